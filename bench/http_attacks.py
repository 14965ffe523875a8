"""HTTP floods next to a live call (issue 9): does the edge hold?

    uv run --extra local python bench/http_attacks.py [--seconds 15]

The bot runs as a subprocess on the embedded default (whisper, receptionist, piper:
the phone path and /v1 share the STT) with API_KEY set, started as bench/calls/
starts it. For each flood in turn, one simulated call talks to the bot while:
  baseline:     nothing else happens (what the call gets on this machine anyway);
  (a) uploads:  3 loops of authorized /v1/orchestrate uploads (25 s of speech) and
                3 loops of unauthorized ones;
  (b) parts:    2 loops of 0.6 MB multipart bodies of 10,000 tiny parts;
  (c) slow:     400 connections, a third silent, a third sending headers a byte at
                a time, a third sending a webhook body a byte at a time.
Each flood runs in a process of its own. Printed per flood: held or not, the worst /livez latency (polled every 100 ms), the
live call's worst gap between two received audio frames inside one utterance, its
turn latencies, and what the flood got back. Targets: /livez < 250 ms, frame gaps
< 60 ms, every turn answered. Traffic goes only to 127.0.0.1; about 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import floods21  # noqa: E402
from bench.calls import EMBEDDED_ENV, LEAD_FRAMES, rss_mb, start_stack, stop  # noqa: E402
from bench.fakes_server import Profile  # noqa: E402
from media import wav  # noqa: E402

CALLERS = REPO.parent / "shared" / "audio" / "callers"
UTTERANCES = ["open_tomorrow_joe.wav", "address_joe.wav", "anyone_joe.wav"]
KEY = "bench-key-" + "0" * 20
LIVEZ_OK_MS = 250.0
# the bot sends MEDIA_FRAMES_PER_MESSAGE (3) frames a message, 60 ms apart when on time: a gap
# is a stall once it is past one more message's worth (the old 60 ms bound failed every row)
GAP_OK_MS = 60.0 + 3 * 20.0
SLOW_HOLD_S = 33.0  # the slow connections are kept trickling this long: BODY_TIMEOUT_S (30) has passed


def long_speech(seconds: float) -> bytes:
    a = wav.read((CALLERS / UTTERANCES[0]).read_bytes())
    reps = int(seconds * a.rate * 2 / len(a.pcm16)) + 1
    return wav.write_pcm16((a.pcm16 * reps)[: int(seconds * a.rate) * 2], a.rate)


def tiny_parts(n: int) -> tuple[bytes, str]:
    b = "xBOUNDARYx"
    body = b"".join(f'--{b}\r\nContent-Disposition: form-data; name="p{i}"\r\n\r\nx\r\n'.encode() for i in range(n))
    return body + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


async def poll_livez(http, url: str, stop_at: asyncio.Event, worst: list[float]) -> None:
    while not stop_at.is_set():
        t = time.perf_counter()
        try:
            async with asyncio.timeout(5):
                async with http.get(url + "/livez") as r:
                    await r.read()
            worst.append((time.perf_counter() - t) * 1000)
        except (TimeoutError, OSError):
            worst.append(5000.0)
        await asyncio.sleep(0.1)


def frame_gaps(report) -> float:
    """The worst gap between two bot audio frames inside one utterance (ms)."""
    from bot.simulator import TurnReport

    worst = 0.0
    bounds = [TurnReport(0, 0.0, 0.0)] + list(report.turns)
    for i, t in enumerate(bounds):
        end = report.turns[i].speech_start_s if i < len(report.turns) else float("inf")
        arr = [x for x in report.bot_media_s if t.speech_end_s <= x < end]
        gaps = np.diff(arr)[LEAD_FRAMES:] * 1000 if len(arr) > LEAD_FRAMES + 1 else []
        worst = max([worst, *gaps])
    return worst


async def flood_uploads(http, url: str, until: float, got: Counter) -> None:
    body = long_speech(25.0)

    async def loop(auth: bool) -> None:
        headers = {"Content-Type": "audio/wav", **({"Authorization": f"Bearer {KEY}"} if auth else {})}
        while time.monotonic() < until:
            try:
                async with http.post(url + "/v1/orchestrate", data=body, headers=headers) as r:
                    await r.read()
                    got[f"{'auth' if auth else 'noauth'}:{r.status}"] += 1
                    if r.status == 429:
                        await asyncio.sleep(0.2)
            except OSError as exc:
                got[f"{'auth' if auth else 'noauth'}:{type(exc).__name__}"] += 1

    await asyncio.gather(*(loop(True) for _ in range(3)), *(loop(False) for _ in range(3)))


async def flood_parts(http, url: str, until: float, got: Counter) -> None:
    body, ctype = tiny_parts(10_000)

    async def loop() -> None:
        while time.monotonic() < until:
            try:
                async with http.post(url + "/v1/orchestrate", data=body,
                                     headers={"Content-Type": ctype, "Authorization": f"Bearer {KEY}"}) as r:
                    got[f"{r.status}:{(await r.json()).get('error', {}).get('code', '')}"] += 1
            except (OSError, ValueError) as exc:
                got[type(exc).__name__] += 1

    await asyncio.gather(loop(), loop())


async def flood_slow(http, url: str, until: float, got: Counter) -> None:
    host, port = url.removeprefix("http://").split(":")
    conns = []
    for i in range(400):
        try:
            r, w = await asyncio.open_connection(host, int(port))
        except OSError:
            got["connect_failed"] += 1
            continue
        if i % 3 == 1:
            w.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        elif i % 3 == 2:
            w.write(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 900\r\n\r\nA=")
        conns.append((r, w))
    got["opened"] = len(conns)
    t0 = time.monotonic()
    until = max(until, t0 + SLOW_HOLD_S)  # past the default body deadline (30 s)
    while time.monotonic() < until:
        for i, (_r, w) in enumerate(conns):
            if i % 3 and not w.is_closing():
                with contextlib.suppress(OSError):
                    w.write(b"X")
        await asyncio.sleep(0.5)
    closed = 0
    for r, w in conns:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.01):
                while await r.read(65536):
                    pass
        if r.at_eof() or r.exception() is not None:
            closed += 1
        w.close()
    got["closed_by_server"] = closed
    got["seconds"] = round(time.monotonic() - t0)


async def flood_none(http, url: str, until: float, got: Counter) -> None:
    """The baseline: what the live call gets on this machine with no flood at all."""
    while time.monotonic() < until:
        await asyncio.sleep(0.2)


FLOODS = {"baseline": flood_none, "uploads": flood_uploads, "parts": flood_parts, "slow": flood_slow,
          "dtmf": floods21.flood_dtmf, "lockout": floods21.flood_lockout, "forms": floods21.flood_forms}


async def flood_main(name: str, url: str, seconds: float, token: str = "", name_wav: str = "") -> None:
    """The flood in a process of its own, so its CPU is not the live caller's."""
    import aiohttp

    floods21.TOKEN, floods21.NAME_WAV = token, name_wav
    got: Counter = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await FLOODS[name](http, url, time.monotonic() + seconds, got)
    print(json.dumps(dict(got)), flush=True)


async def one(name: str, stack, seconds: float) -> dict:
    import aiohttp

    from bot.carriers.twilio.simulator import simulate_call

    livez: list[float] = []
    stop_at = asyncio.Event()
    log_from = stack.log_path.stat().st_size
    flood = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--flood", name, "--url", stack.url, "--seconds", str(seconds),
        "--token", stack.token or "", "--name-wav", str(stack.tmp / "name.wav"), cwd=REPO, stdout=asyncio.subprocess.PIPE)
    rss = [rss_mb(stack.server.pid)]

    async def sample_rss() -> None:
        while not stop_at.is_set():
            rss.append(rss_mb(stack.server.pid))
            await asyncio.sleep(0.5)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        poller = asyncio.create_task(poll_livez(http, stack.url, stop_at, livez))
        sampler = asyncio.create_task(sample_rss())
        await asyncio.sleep(1.5)  # the flood is on before the call starts
        report = await simulate_call(stack.url, [CALLERS / u for u in UTTERANCES], public_url=stack.url,
                                     auth_token=stack.token, gap_s=0.8, session=http, max_wait_s=20)
        out, _ = await flood.communicate()
        await asyncio.sleep(2.0)  # what the flood left behind, once it is over
        stop_at.set()
        await poller
        await sampler
        rss_after = rss_mb(stack.server.pid)
    got = Counter(json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {"flood_failed": 1})
    with open(stack.log_path, "rb") as f:  # what the bot logged about its stages meanwhile
        f.seek(log_from)
        lines = f.read().decode(errors="replace").splitlines()
    got["bot_stage_timeouts"] = sum(1 for line in lines if "timeout" in line and "stage" in line)
    got["bot_tracebacks"] = sum(1 for line in lines if line.startswith("Traceback"))
    turns = [t.first_audio_ms for t in report.turns]
    answered = report.greeting_ms is not None and len(turns) == len(UTTERANCES) and all(t is not None for t in turns)
    gap = frame_gaps(report)
    worst = max(livez, default=float("inf"))
    held = answered and worst < LIVEZ_OK_MS and gap < GAP_OK_MS
    if name == "uploads":
        held = held and all(k.split(":")[1] == "401" for k in got if k.startswith("noauth"))
    if name == "slow":
        held = held and got["closed_by_server"] == got["opened"]
    if name == "lockout":
        held = held and got["owner_tries"] > 0 and got["owner_refused"] == 0
    if name == "forms":
        held = held and got["bot_tracebacks"] == 0 and not any(k.startswith("5") for k in got)
    if name == "dtmf":
        held = held and max(rss) - rss[0] < 300 and got["attacker_calls"] > 0
    return {"attack": name, "held": held, "livez_worst_ms": round(worst), "frame_gap_worst_ms": round(gap),
            "rss_mb": f"{rss[0]:.0f}->{max(rss):.0f}->{rss_after:.0f}",
            "turn_ms": [None if t is None else round(t) for t in turns], "answered": answered,
            "error": report.error, "flood": dict(got)}


async def render_name(path: Path) -> None:
    """A caller saying their name (the message form's second answer), in the embedded voice."""
    from bot.providers.piper import PiperTTS

    tts = PiperTTS()
    await tts.start()
    pcm = b"".join([c async for c in tts.synthesize("My name is Sam Lee.", mulaw=False)])
    await tts.close()
    path.write_bytes(wav.write_pcm16(b"\0\0" * (tts.pcm_rate // 2) + pcm + b"\0\0" * tts.pcm_rate, tts.pcm_rate))


async def main_async(seconds: float, only: list[str] | None = None) -> int:
    args = SimpleNamespace(profile=Profile(), live=False, end_silence_ms=None, early_turn_ms=None, speculative_llm=None)
    with tempfile.TemporaryDirectory(prefix="http-attacks-") as tmp:
        stack = await start_stack(args, "asyncio", Path(tmp), {**EMBEDDED_ENV, "API_KEY": KEY})
        await render_name(stack.tmp / "name.wav")
        rows = []
        try:
            for name in FLOODS:
                if only and name not in only and name != "baseline":
                    continue
                row = await one(name, stack, seconds)
                rows.append(row)
                print(f"{name:8s} held={'yes' if row['held'] else 'NO ':3s} livez_worst={row['livez_worst_ms']:5d} ms  "
                      f"frame_gap_worst={row['frame_gap_worst_ms']:4d} ms  turns_ms={row['turn_ms']}  rss_mb={row['rss_mb']}  "
                      f"flood={row['flood']}{'  error=' + row['error'] if row['error'] else ''}", flush=True)
        finally:
            await stop(stack.server)
            await stop(stack.fakes)
            log = stack.log_path.read_text(errors="replace")
            print(f"server log: {len(log)} bytes, {log.count('Traceback')} tracebacks, "
                  f"{sum(1 for line in log.splitlines() if ' ERROR ' in line)} ERROR lines")
    return 0 if all(r["held"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="how long each flood runs (default 15; the slow one 33)")
    ap.add_argument("--flood", choices=sorted(FLOODS), help=argparse.SUPPRESS)  # the flood process
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--token", default="", help=argparse.SUPPRESS)
    ap.add_argument("--name-wav", default="", help=argparse.SUPPRESS)
    ap.add_argument("--only", default="", help="comma-separated floods to run (default: all), e.g. dtmf,lockout,forms")
    a = ap.parse_args(argv)
    if a.flood:
        asyncio.run(flood_main(a.flood, a.url, a.seconds, a.token, a.name_wav))
        return 0
    return asyncio.run(main_async(a.seconds, [f for f in a.only.split(",") if f]))


if __name__ == "__main__":
    sys.exit(main())
