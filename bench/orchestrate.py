"""Per-stage timings of POST /v1/orchestrate on the embedded engines.

    uv run --extra local python bench/orchestrate.py [--runs 5]

Serves the real app (whisper + receptionist + piper) on 127.0.0.1, posts caller
utterances from ../shared/audio/callers, and prints the orchestrator's own timings
(Server-Timing): STT, LLM first token, TTS first byte, first reply audio ready
(target: <= 1000 ms for a ~3 s utterance) and the whole request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AUDIO = REPO.parent / "shared" / "audio" / "callers"

from bot.settings import Settings  # noqa: E402
from handlers.app import create_app  # noqa: E402


def parse_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="requests per utterance")
    ap.add_argument("--voice", default="joe")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), twilio_validate=False, trial=True, port=0)
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        manifest = [m for m in json.loads((AUDIO / "manifest.json").read_text()) if m["voice"] == args.voice]
        rows = []
        async with aiohttp.ClientSession() as http:
            # one warm-up request: first inference pays one-off allocations
            await (await http.post(f"http://127.0.0.1:{port}/v1/orchestrate", data=(AUDIO / manifest[0]["file"]).read_bytes(), headers={"Content-Type": "audio/wav"})).read()
            for m in manifest:
                body = (AUDIO / m["file"]).read_bytes()
                for _ in range(args.runs):
                    r = await http.post(f"http://127.0.0.1:{port}/v1/orchestrate", data=body, headers={"Content-Type": "audio/wav"})
                    await r.read()
                    t = parse_timing(r.headers.get("Server-Timing", ""))
                    rows.append((m["file"], m["seconds"], r.status, t))
        await runner.cleanup()

    keys = ["stt", "llm_first_token", "tts_first_byte", "first_audio", "total"]
    print(f"{'utterance':28s} {'sec':>5s} {'status':>6s} " + " ".join(f"{k:>15s}" for k in keys))
    for f, sec, st, t in rows:
        print(f"{f:28s} {sec:5.2f} {st:6d} " + " ".join(f"{t.get(k, float('nan')):15.1f}" for k in keys))
    ok = [t for _, _, st, t in rows if st == 200]
    print("\nmedian ms over", len(ok), "ok requests:")
    for k in keys:
        vals = [t[k] for t in ok if k in t]
        if vals:
            print(f"  {k:16s} p50 {statistics.median(vals):7.1f}   max {max(vals):7.1f}")
    near3 = [t["first_audio"] for _, sec, st, t in rows if st == 200 and 2.5 <= sec <= 3.5 and "first_audio" in t]
    if near3:
        print(f"\nfirst reply audio ready, utterances of 2.5-3.5 s: p50 {statistics.median(near3):.1f} ms, max {max(near3):.1f} ms (target <= 1000)")


if __name__ == "__main__":
    asyncio.run(main())
