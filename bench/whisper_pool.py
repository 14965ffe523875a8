"""Embedded STT under concurrency: K transcriptions at once through WhisperSTT.

    uv run --extra local python -m bench.whisper_pool [--k 1,4,8] [--pools 1,2]

For each pool size (threads sharing one model, CTranslate2 ``num_workers``) and each K,
K caller utterances are submitted at once; prints p50/max latency of a turn's STT and
the wall time of the batch, with bench.calls' calibration line.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from bench.calls import calibration
from bot.providers.whisper import WhisperSTT, _cores
from bot.settings import Settings
from media import wav

REPO = Path(__file__).resolve().parent.parent
FILES = ["open_tomorrow_joe.wav", "address_joe.wav", "leave_message_joe.wav"]


async def run(args: argparse.Namespace) -> None:
    clips = [wav.read((REPO / "examples" / "callers" / f).read_bytes()) for f in FILES]
    print(calibration() + "  (busy shared machine)")
    for pool in [int(x) for x in args.pools.split(",")]:
        stt = WhisperSTT(Settings(twilio_validate=False), pool=pool)
        await stt.start()
        for k in [int(x) for x in args.k.split(",")]:
            async def one(i: int, stt: WhisperSTT = stt) -> float:
                c = clips[i % len(clips)]
                t = time.perf_counter()
                await stt.transcribe(c.pcm16, c.rate)
                return time.perf_counter() - t

            t0 = time.perf_counter()
            lat = sorted(await asyncio.gather(*(one(i) for i in range(k))))
            wall = time.perf_counter() - t0
            print(f"pool {pool} x {stt._threads} threads  K={k:<2}  stt p50 {statistics.median(lat) * 1000:6.0f} ms  "
                  f"max {lat[-1] * 1000:6.0f} ms  batch wall {wall * 1000:6.0f} ms")
        await stt.close()
    print(f"cores {_cores()}; clips {', '.join(f'{c.seconds:.1f} s' for c in clips)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", default="1,4,8")
    ap.add_argument("--pools", default="1,2")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
