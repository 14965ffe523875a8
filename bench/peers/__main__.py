"""phonebot and a Pipecat bot side by side: same fakes, same simulated callers, one run.

    uv run --extra local python -m bench.peers --n 1,25,50,100
    uv run --extra local python -m bench.peers --n 1 --pauses --bots phonebot,pipecat

For every N, each bot in turn (alternating, a fresh bot and fresh fakes per row): the
cloud fakes (bench/fakes_server.py --live: Deepgram's live socket, OpenAI, ElevenLabs,
one latency profile), the bot, then N calls from bench.calls' caller processes
(bot.carriers.twilio.simulator.simulate_call). The Pipecat bot (bench/peers/pipecat/bot.py) runs in its
own virtualenv, bench/peers/pipecat/.venv, made on first use from requirements.txt.
bench/README.md ("peers") says what every column means and what cannot be made equal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import calls  # noqa: E402
from bench.fakes_server import Profile, reply_audio_frames  # noqa: E402
from bot.settings import DEFAULT_GREETING  # noqa: E402

PEER = REPO / "bench" / "peers" / "pipecat"
VENV = PEER / ".venv"


def pipecat_python() -> Path:
    """The Pipecat bot's own interpreter (made once: uv venv + uv pip install)."""
    py = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    want = (PEER / "requirements.txt").read_text()
    if not py.exists() or not stamp.exists() or stamp.read_text() != want:
        print("setting up the Pipecat environment (bench/peers/pipecat/.venv) ...", flush=True)
        subprocess.run(["uv", "venv", "--quiet", "--allow-existing", "--python", f"{sys.version_info.major}.{sys.version_info.minor}",
                        str(VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(py), "-r", str(PEER / "requirements.txt")], check=True)
        stamp.write_text(want)
    return py


async def start_fakes(args, tmp: Path):
    p = args.profile
    fargs = ["--live", "--stt-delay", str(p.stt_delay_s), "--llm-first", str(p.llm_first_s), "--llm-tps", str(p.llm_tokens_per_s),
             "--tts-first", str(p.tts_first_s), "--tts-chunk-delay", str(p.tts_chunk_delay_s), "--reply", p.reply]
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.fakes_server", *fargs, cwd=REPO,
                                                 stdout=asyncio.subprocess.PIPE, stderr=open(tmp / "fakes.log", "ab"))
    line = await asyncio.wait_for(fakes.stdout.readline(), 30)
    return fakes, f"http://127.0.0.1:{json.loads(line)['port']}"


async def start_pipecat(args, tmp: Path) -> calls.Stack:

    fakes, fbase = await start_fakes(args, tmp)
    port = calls.free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "pipecat.log"
    server = await asyncio.create_subprocess_exec(
        str(args.pipecat_python), str(PEER / "bot.py"), "--port", str(port), "--fakes", fbase, cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=open(log_path, "ab"))
    stack = calls.Stack("pipecat", fakes, server, url, None, tmp, {}, log_path)  # type: ignore[arg-type]
    await calls.wait_ready(server, url, log_path, "the Pipecat bot", 120.0, poll_s=0.3)
    return stack


async def start_phonebot(args, tmp: Path) -> calls.Stack:
    return await calls.start_stack(args, args.loop, tmp)


HEAD = (f"{'bot':9s} {'N':>4s} {'ok/fail':>9s} | {'lat p50':>7s} {'p95':>6s} | {'clear p95':>9s} {'(n/barge)':>9s} | {'talk-over':>9s} | "
        f"{'cpu s/call-min':>14s} {'cpu%':>5s} | {'rss MB':>6s} {'MB/call':>7s} | {'load 1/5/15':>14s}")


def row(bot: str, n: int, result: list[dict], samples: list[dict], rss0: float, load: str) -> str:
    turns = [t for c in result for t in c.get("turns", [])]
    lat = [t["ms"] for t in turns if t.get("ms") is not None]
    barge_turns = [t for c in result if c.get("barge") for t in c.get("turns", [])]
    clears = [t["clear_ms"] for t in barge_turns if t.get("clear_ms") is not None]
    over = sum(1 for t in turns if t.get("over"))
    ok = sum(1 for c in result if c.get("ok"))
    s0, s1 = samples[0], samples[-1]
    wall = s1["t"] - s0["t"]
    cpu = s1["server"] - s0["server"]
    call_min = sum(c["t1"] - c["t0"] for c in result if "t0" in c) / 60
    rss_peak = max(s["rss"] for s in samples)
    return (f"{bot:9s} {n:4d} {ok:>4d}/{len(result) - ok:<4d} | {calls.pct(lat, 50):7.0f} {calls.pct(lat, 95):6.0f} | "
            f"{calls.pct(clears, 95):9.0f} {len(clears):>4d}/{len(barge_turns):<4d} | {over:>4d}/{len(turns):<4d} | "
            f"{cpu / call_min if call_min else float('nan'):14.2f} {cpu / wall * 100 if wall else float('nan'):5.1f} | "
            f"{rss_peak:6.0f} {(rss_peak - rss0) / n:7.2f} | {load:>14s}")


async def run(args) -> None:
    rng = random.Random(args.seed)
    print(calls.calibration())
    p = args.profile
    print(f"profile: live STT (fake Deepgram socket, final after the endpointing silence the client asks for); LLM first token "
          f"{p.llm_first_s * 1000:.0f} ms then {p.llm_tokens_per_s:g} tokens/s; TTS first byte {p.tts_first_s * 1000:.0f} ms")
    print(f"calls: greeting + {args.turns} utterances from {'examples/callers_pauses' if args.pauses else '../shared/audio/callers'}; "
          f"{args.barge_share:.0%} of calls interrupt every bot utterance {args.barge_in_ms} ms after it starts; ramp {args.ramp_s:g} s")
    print(HEAD, flush=True)
    for n in args.ns:
        specs = []
        for i in range(n):
            spec = calls.script(rng, args.pool, args.turns, round(i * args.ramp_s / max(1, n), 3))
            if rng.random() < args.barge_share:
                spec["barge_in_ms"] = args.barge_in_ms
            specs.append(spec)
        for bot in args.bots:
            with calls.workdir(args) as tmpd:
                tmp = Path(tmpd) / f"{bot}-{n}"
                tmp.mkdir(parents=True, exist_ok=True)
                stack = await (start_pipecat(args, tmp) if bot == "pipecat" else start_phonebot(args, tmp))
                try:
                    base = {"url": stack.url, "token": stack.token, "uvloop": args.caller_uvloop,
                            "greeting_frames": args.greeting_frames, "reply_frames": args.reply_frames}
                    await asyncio.sleep(1.0)
                    rss0, load = calls.rss_mb(stack.server.pid), calls.loadavg()
                    result, samples = await calls.run_workers(stack, calls.split_jobs(base, specs, calls.auto_workers(n, args.workers)),
                                                              timeout=args.timeout)
                    print(row(bot, n, result, samples, rss0, load), flush=True)
                    if calls.failures(result):
                        print(f"          failures: {calls.failures(result)}", flush=True)
                    calls.dump(args, "peers", bot, n, result)
                finally:
                    await calls.stop(stack.server)
                    await calls.stop(stack.fakes)
    print(calls.calibration())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1,25,50,100", help="comma-separated numbers of simultaneous calls")
    ap.add_argument("--bots", default="phonebot,pipecat", help="which bots, in the order they alternate")
    ap.add_argument("--turns", type=int, default=3, help="caller utterances per call (after the greeting)")
    ap.add_argument("--pauses", action="store_true", help="utterances with mid-sentence pauses (examples/callers_pauses)")
    ap.add_argument("--barge-share", type=float, default=0.5, help="share of calls that interrupt every bot utterance")
    ap.add_argument("--barge-in-ms", type=int, default=800, help="interrupt this long after the bot's audio begins")
    ap.add_argument("--ramp-s", type=float, default=2.0)
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="phonebot's event loop")
    ap.add_argument("--workers", type=int, default=0, help="caller processes (0 = one per 100 calls)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per row, s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="append every call's numbers here")
    ap.add_argument("--log-dir", default=None, help="keep the bots', fakes' and callers' logs here")
    args = ap.parse_args(argv)
    args.ns = [int(x) for x in args.n.split(",") if x.strip()]
    args.bots = [b.strip() for b in args.bots.split(",") if b.strip()]
    if not set(args.bots) <= {"phonebot", "pipecat"}:
        ap.error("--bots: phonebot and/or pipecat")
    args.profile = Profile()
    args.live, args.speculative_llm, args.end_silence_ms, args.early_turn_ms = True, None, None, None
    args.reply_frames = reply_audio_frames(args.profile)
    args.greeting_frames = math.ceil(8 * max(200, args.profile.tts_ms_per_char * len(DEFAULT_GREETING)) / 160)
    args.pool = calls.caller_pool(args.pauses)
    args.caller_uvloop = calls.has_uvloop()
    if args.loop == "auto":
        args.loop = "uvloop" if calls.has_uvloop() else "asyncio"
    if "pipecat" in args.bots:
        args.pipecat_python = pipecat_python()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
