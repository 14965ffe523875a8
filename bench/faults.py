"""How fast a failing stage becomes a structured error, through the real SDKs.

    uv run --extra local python bench/faults.py [--timeout 1.0]

For each stage x fault (the wire fakes of tests/fakes/cloud.py on 127.0.0.1), posts a
caller WAV to /v1/orchestrate and prints the status, the error code and the time from
the failing stage's start to the error reply (target: <= stage timeout + 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.settings import Settings  # noqa: E402
from handlers.app import create_app  # noqa: E402
from tests.fakes.cloud import FakeBehaviour, cloud_app  # noqa: E402

AUDIO = REPO.parent / "shared" / "audio" / "callers" / "yes_joe.wav"
MODES = ["500", "429", "hang", "reset", "garbage", "empty", "stall", "cut"]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args()
    body = AUDIO.read_bytes()
    print(f"stage timeout {args.timeout:.2f} s; 'stage ms' = failing stage start -> error reply")
    print(f"{'stage':5s} {'fault':8s} {'status':>6s} {'code':15s} {'total ms':>9s} {'stage ms':>9s} {'over budget ms':>15s}")
    worst = 0.0
    for stage in ("stt", "llm", "tts"):
        for mode in MODES:
            if stage == "stt" and mode in ("stall", "cut"):
                continue  # not streaming
            fakes = {"stt": FakeBehaviour(), "llm": FakeBehaviour(reply="We open at nine."), "tts": FakeBehaviour()}
            fr, root = await serve(cloud_app(**fakes))
            with tempfile.TemporaryDirectory() as tmp:
                s = Settings(
                    data_dir=Path(tmp), twilio_validate=False, trial=True, stt_streaming=False,
                    stt_provider="deepgram", llm_provider="openai", tts_provider="elevenlabs",
                    deepgram_api_key="k", openai_api_key="k", elevenlabs_api_key="k",
                    deepgram_base_url=root, openai_base_url=root + "/v1", elevenlabs_base_url=root,
                    stt_timeout=args.timeout, llm_timeout=args.timeout, tts_timeout=args.timeout,
                )
                br, url = await serve(create_app(s, embedded_prompt_fallback=False))
                fakes[stage].mode = mode
                async with aiohttp.ClientSession() as http:
                    t0 = time.perf_counter()
                    r = await http.post(url + "/v1/orchestrate", data=body, headers={"Content-Type": "audio/wav"})
                    text = await r.text()
                    total = (time.perf_counter() - t0) * 1000
                timing = dict(
                    (p.split(";dur=")[0].strip(), float(p.split(";dur=")[1])) for p in r.headers.get("Server-Timing", "").split(",") if ";dur=" in p
                )
                before = {"stt": 0.0, "llm": timing.get("stt", 0.0), "tts": timing.get("stt", 0.0) + timing.get("llm_first_token", 0.0)}[stage]
                stage_ms = total - before
                code = json.loads(text)["error"]["code"] if r.status >= 400 else "-"
                over = stage_ms - args.timeout * 1000
                worst = max(worst, over)
                print(f"{stage:5s} {mode:8s} {r.status:6d} {code:15s} {total:9.1f} {stage_ms:9.1f} {over:15.1f}")
                await br.cleanup()
            await fr.cleanup()
    print(f"\nworst time over the stage budget: {worst:.1f} ms (target <= 100)")


if __name__ == "__main__":
    asyncio.run(main())
