"""Attacks on the media-stream path next to a live simulated call (issue 9).

    uv run --extra local python -m bench.stream_attacks [--forged 200] [--floods 4] [--flood-msgs 760]

The bot runs as a subprocess on the profiled cloud fakes with real Twilio signatures
and REST control pointed at a Twilio REST fake in this process (as bench/calls/
starts it). Per phase, one simulated caller (its own process) talks to the bot
while an attacker process (also its own, so its load is not ours) runs:

- baseline: nothing; the live call alone.
- forged: N signed websockets whose ``start`` carries no token, a reused token, or
  a genuine token for another CallSid.
- flood: K streams, each admitted with a real webhook token, each sending 1.5 s of
  real speech and then 760 media messages of 8,000 bytes (1 s each if counted as
  audio) as fast as it can, then nothing.

This process probes /livez every 50 ms. Per phase it prints: whether the attack
held, worst /livez latency, the live call's worst gap between the bot's audio
frames (within a reply), its turn latencies, the bot's RSS growth, and the work the
attack caused: calls admitted, STT/LLM/TTS requests (from the bot's /metrics
histograms, which count every provider request of a turn), REST updates seen by
the Twilio fake. The bot has no database on this branch. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls import AUDIO, cpu_s, rss_mb, scrape, start_stack, stop  # noqa: E402
from bench.fakes_server import Profile, reply_audio_frames  # noqa: E402
from bot.settings import DEFAULT_GREETING  # noqa: E402

AC = "AC" + "b" * 32
TARGETS = {"livez_ms": 250.0, "gap_ms": 60.0}


# ----------------------------------------------------------------------------- attacker process


def _sid(prefix: str, n: int, salt: int) -> str:
    return f"{prefix}{salt:08x}{n:024x}"


async def _webhook(http, url: str, token: str, call_sid: str) -> str:
    from twilio.request_validator import RequestValidator

    params = {"CallSid": call_sid, "AccountSid": AC, "From": "+15550001234", "To": "+15550004321", "Direction": "inbound"}
    sig = RequestValidator(token).compute_signature(url + "/twilio/voice", params)
    async with http.post(url + "/twilio/voice", data=params, headers={"X-Twilio-Signature": sig}) as r:
        text = await r.text()
    m = re.search(r'<Parameter name="token" value="([^"]+)"', text)
    return m.group(1) if m else ""  # an old bot issues no token


def _start(call_sid: str, stream_sid: str, params: dict) -> str:
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "accountSid": AC, "callSid": call_sid, "streamSid": stream_sid, "tracks": ["inbound"],
        "customParameters": params, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


async def _open(http, url: str, token: str):
    from twilio.request_validator import RequestValidator

    ws_url = url.replace("http", "ws", 1) + "/twilio/media"
    sig = RequestValidator(token).compute_signature(ws_url, {})
    return await http.ws_connect(ws_url, headers={"X-Twilio-Signature": sig}, max_msg_size=0)


async def _outcome(ws, wait_s: float) -> str:
    """"closed:<code>" if the bot closed the stream within ``wait_s``, else "open"."""
    import aiohttp

    try:
        async with asyncio.timeout(wait_s):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return f"closed:{ws.close_code}"
    except TimeoutError:
        return "open"


async def forged(url: str, token: str, n: int, salt: int) -> dict:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        # a token already used: the webhook's token for call R, redeemed once by R's own stream
        origin = _sid("CA", 1, salt)
        used = await _webhook(http, url, token, origin)
        first = await _open(http, url, token)
        await first.send_str(_start(origin, _sid("MZ", 1, salt), {"token": used}))
        await asyncio.sleep(0.3)
        await first.close()
        other = await _webhook(http, url, token, _sid("CA", 2, salt))  # a genuine token of another call
        kinds = ["no_token", "reused", "wrong_call_sid"]

        async def one(i: int) -> tuple[str, str]:
            kind = kinds[i % 3]
            call = origin if kind == "reused" else _sid("CA", 1000 + i, salt)
            params = {} if kind == "no_token" else {"token": used if kind == "reused" else other}
            try:
                ws = await _open(http, url, token)
            except aiohttp.WSServerHandshakeError as exc:
                return kind, f"refused:{exc.status}"
            await ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
            await ws.send_str(_start(call, _sid("MZ", 1000 + i, salt), params))
            out = await _outcome(ws, 3.0)
            await ws.close()
            return kind, out

        t0 = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(n)))
    outcomes: dict[str, int] = {}
    for kind, out in results:
        outcomes[f"{kind} {out}"] = outcomes.get(f"{kind} {out}", 0) + 1
    return {"outcomes": outcomes, "seconds": round(time.monotonic() - t0, 2), "admitted_setup_calls": 1}


async def flood(url: str, token: str, streams: int, msgs: int, size: int, salt: int) -> dict:
    import aiohttp

    from bot.simulator import load_ulaw
    from media import frames

    payload = base64.b64encode(b"\x00" * size).decode()  # loud if it were audio
    # real speech first (160-byte frames), so the oversize frames land inside a turn
    speech = [base64.b64encode(f).decode() for f in frames.split(load_ulaw(AUDIO / "open_tomorrow_joe.wav"))[:75]]
    media = '{"event":"media","sequenceNumber":"%d","streamSid":"%s","media":{"track":"inbound","chunk":"%d","timestamp":"%d","payload":"%s"}}'

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(i: int) -> dict:
            call, stream = _sid("CA", 5000 + i, salt), _sid("MZ", 5000 + i, salt)
            tok = await _webhook(http, url, token, call)
            ws = await _open(http, url, token)
            await ws.send_str(_start(call, stream, {"token": tok}))
            for k, b64 in enumerate(speech):
                await ws.send_str(media % (k + 2, stream, k + 1, (k + 1) * 20, b64))
            t0 = time.monotonic()
            for k in range(len(speech), len(speech) + msgs):
                await ws.send_str(media % (k + 2, stream, k + 1, (k + 1) * 20, payload))
            sent_s = time.monotonic() - t0
            out = await _outcome(ws, 2.0)
            await ws.close()
            return {"sent_s": round(sent_s, 2), "after": out}

        per = await asyncio.gather(*(one(i) for i in range(streams)))
    return {"streams": per}


def attacker_main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    if job["kind"] == "forged":
        out = asyncio.run(forged(job["url"], job["token"], job["n"], job["salt"]))
    else:
        out = asyncio.run(flood(job["url"], job["token"], job["streams"], job["msgs"], job["size"], job["salt"]))
    print(json.dumps(out))
    return 0


# ----------------------------------------------------------------------------- orchestration


async def probe_livez(url: str, stop_at: asyncio.Event, out: list[float]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        while not stop_at.is_set():
            t0 = time.monotonic()
            try:
                async with http.get(url + "/livez", timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                out.append((time.monotonic() - t0) * 1000)
            except (aiohttp.ClientError, TimeoutError):
                out.append(10_000.0)
            await asyncio.sleep(0.05)


async def run_phase(name: str, stack, args, attack: dict | None, rest_updates: list) -> dict:
    m0 = await scrape(stack.url)
    rss0 = rss_mb(stack.server.pid)
    cpu0 = cpu_s(stack.server.pid)
    rest0 = len(rest_updates)
    job = {
        "url": stack.url, "token": stack.token, "mode": "calls", "greeting_frames": args.greeting_frames,
        "reply_frames": args.reply_frames,
        "calls": [{"utterances": [str(AUDIO / f) for f in args.utterances], "gap_s": 0.6, "delay_s": 0.0}],
    }
    caller = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.calls", "--worker", cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=open(stack.tmp / "callers.log", "ab"), limit=1 << 24)
    caller.stdin.write(json.dumps(job).encode())
    caller.stdin.close()
    livez: list[float] = []
    done = asyncio.Event()
    prober = asyncio.create_task(probe_livez(stack.url, done, livez))
    attack_out: dict = {}
    rss_peak = rss0
    if attack is not None:
        await asyncio.sleep(args.attack_after_s)  # the caller is speaking its first turn
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.stream_attacks", "--attacker", json.dumps(attack | {"url": stack.url, "token": stack.token}),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=open(stack.tmp / "attacker.log", "ab"))
        while attacker.returncode is None:
            rss_peak = max(rss_peak, rss_mb(stack.server.pid))
            try:
                await asyncio.wait_for(attacker.wait(), 0.2)
            except TimeoutError:
                pass
        raw = (await attacker.stdout.read()).decode().strip()
        attack_out = json.loads(raw) if raw else {"error": "attacker printed nothing (see attacker.log)"}
    while caller.returncode is None:
        rss_peak = max(rss_peak, rss_mb(stack.server.pid))
        try:
            await asyncio.wait_for(caller.wait(), 0.2)
        except TimeoutError:
            pass
    line = (await caller.stdout.read()).decode().strip().splitlines()
    call = json.loads(line[-1]) if line else {"ok": False, "error": "no report", "turns": [], "pace": []}
    await asyncio.sleep(1.5)  # let refused and flooded streams finish closing
    done.set()
    await prober
    m1 = await scrape(stack.url)
    cpu = cpu_s(stack.server.pid) - cpu0

    def d(key: str) -> float:
        return m1.get(key, 0.0) - m0.get(key, 0.0)

    rejected = {k.split('"')[1]: int(m1[k] - m0.get(k, 0.0)) for k in m1 if k.startswith("phonebot_calls_rejected_total{") and m1[k] - m0.get(k, 0.0)}
    return {
        "phase": name, "attack": attack_out, "call": call, "livez_max": max(livez, default=float("nan")),
        "livez_n": len(livez), "rss0": rss0, "rss_peak": rss_peak, "cpu_s": cpu,
        "gap_max": 20 + max(call.get("pace") or [0.0]), "underruns": call.get("underruns", 0),
        "turn_ms": [t["ms"] for t in call.get("turns", [])],
        "work": {"calls": int(d("phonebot_calls_total")), "stt": int(d("phonebot_stt_seconds_count")),
                 "llm": int(d("phonebot_llm_first_token_seconds_count")), "tts": int(d("phonebot_tts_first_byte_seconds_count")),
                 "turns": int(sum(d(k) for k in m1 if k.startswith("phonebot_turns_total{"))), "rest": len(rest_updates) - rest0},
        "rejected": rejected,
        "too_large": int(d('phonebot_protocol_errors_total{reason="too_large_payload"}')),
    }


def verdict(r: dict, base: dict, args) -> tuple[bool, list[str]]:
    """Held: /livez and frame gaps within target, every live turn answered, and the
    attack caused no provider or REST work beyond the live call's own."""
    why = []
    if not (r["livez_max"] < TARGETS["livez_ms"]):
        why.append(f"/livez {r['livez_max']:.0f} ms")
    if not (r["gap_max"] < TARGETS["gap_ms"]):
        why.append(f"frame gap {r['gap_max']:.0f} ms")
    if not r["call"].get("ok") or any(t is None for t in r["turn_ms"]):
        why.append(f"live call not ok ({r['call'].get('error') or 'a turn unanswered/fallback'})")
    w, bw = r["work"], base["work"]
    for k in ("stt", "llm", "tts", "turns"):
        if w[k] > bw[k]:
            why.append(f"{k} work {w[k]} > the live call's own {bw[k]}")
    if w["rest"]:
        why.append(f"{w['rest']} REST updates")
    if r["phase"] == "forged":
        admitted = w["calls"] - 1 - r["attack"].get("admitted_setup_calls", 0)
        if admitted > 0:
            why.append(f"{admitted} forged streams became calls")
        outs = r["attack"].get("outcomes", {})
        not_closed = sum(v for k, v in outs.items() if not k.endswith((":1008", ":503")))
        if not_closed:
            why.append(f"{not_closed} forged streams not closed")
    if r["phase"] == "flood":
        if any(s["after"] != "open" for s in r["attack"].get("streams", [])):
            why.append("a flooded stream was ended (a violation should not end the call)")
    return not why, why


def report(rows: list[dict], args) -> None:
    base = rows[0]
    print(f"\nlive call: {len(args.utterances)} turns; targets /livez < {TARGETS['livez_ms']:.0f} ms, frame gaps < {TARGETS['gap_ms']:.0f} ms, turns answered")
    print(f"{'phase':<9} {'held':<5} {'livez max':>9} {'gap max':>8} {'turn ms':<16} {'rss MB':>11} {'bot cpu':>7} {'calls':>5} {'stt/llm/tts':>11} {'REST':>4}  notes")
    for r in rows:
        ok, why = verdict(r, base, args) if r is not base else (bool(r["call"].get("ok")), [])
        turns = ",".join("-" if t is None else f"{t:.0f}" for t in r["turn_ms"])
        w = r["work"]
        rss = f"{r['rss0']:.0f}->{r['rss_peak']:.0f}"
        notes = "; ".join(why)
        if r["phase"] == "forged":
            notes = (notes + "; " if notes else "") + "outcomes " + ", ".join(f"{k}: {v}" for k, v in sorted(r["attack"].get("outcomes", {}).items()))
            notes += f"; rejected {r['rejected']}"
        if r["phase"] == "flood":
            notes = (notes + "; " if notes else "") + f"refused payloads {r['too_large']}; per stream sent in " + ",".join(
                f"{s['sent_s']}s/{s['after']}" for s in r["attack"].get("streams", []))
        print(f"{r['phase']:<9} {'yes' if ok else 'NO':<5} {r['livez_max']:>7.0f}ms {r['gap_max']:>6.0f}ms {turns:<16} {rss:>11} {r['cpu_s']:>6.1f}s {w['calls']:>5} "
              f"{w['stt']:>3}/{w['llm']}/{w['tts']:<5} {w['rest']:>4}  {notes}")


async def main_async(args) -> int:
    from aiohttp import web

    from tests.fakes.twilio_rest import RestBehaviour, twilio_rest_app

    rest = RestBehaviour()
    runner = web.AppRunner(twilio_rest_app(rest), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rest_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    stack_args = SimpleNamespace(profile=Profile(), live=False, end_silence_ms=None, early_turn_ms=0, speculative_llm=None)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stream-attacks-") as tmp:
        stack = await start_stack(stack_args, "auto", Path(tmp), {"TWILIO_ACCOUNT_SID": AC, "TWILIO_BASE_URL": rest_url})
        try:
            rows = [await run_phase("baseline", stack, args, None, rest.updates)]
            if args.forged:
                rows.append(await run_phase("forged", stack, args, {"kind": "forged", "n": args.forged, "salt": 1}, rest.updates))
            if args.floods:
                rows.append(await run_phase("flood", stack, args, {"kind": "flood", "streams": args.floods, "msgs": args.flood_msgs,
                                                                    "size": args.flood_bytes, "salt": 2}, rest.updates))
        finally:
            await stop(stack.server)
            await stop(stack.fakes)
            await runner.cleanup()
        report(rows, args)
        print(f"({time.monotonic() - t0:.0f} s in all; load average {Path('/proc/loadavg').read_text().split()[0]})")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(verdict(r, rows[0], args)[0] for r in rows[1:]) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--attacker"]:
        return attacker_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench.stream_attacks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--forged", type=int, default=200, help="forged streams (0 = skip)")
    ap.add_argument("--floods", type=int, default=4, help="streams flooding oversize frames (0 = skip)")
    ap.add_argument("--flood-msgs", type=int, default=760)
    ap.add_argument("--flood-bytes", type=int, default=8000)
    ap.add_argument("--attack-after-s", type=float, default=3.5, help="start the attack this long into the live call")
    ap.add_argument("--json", default=None, help="write every phase's numbers here")
    args = ap.parse_args(argv)
    args.utterances = ["open_tomorrow_joe.wav", "address_joe.wav"]
    p = Profile()
    args.reply_frames = reply_audio_frames(p)
    args.greeting_frames = math.ceil(8 * max(200, p.tts_ms_per_char * len(DEFAULT_GREETING)) / 160)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
