"""Embedded STT under concurrency: K transcriptions at once through WhisperSTT.

    uv run --extra local python -m bench.whisper_pool [--k 1,4,8] [--pools 1,2] [--windows 30,15]

For each encoder window (WHISPER_WINDOW_S), pool size (threads sharing one model,
CTranslate2 ``num_workers``) and K, K caller utterances are submitted at once; prints
p50/max latency of a turn's STT and the wall time of the batch, with bench.calls'
calibration line. The "batched" rows run the same K utterances as ONE batched
encode + decode on the model (what faster-whisper's batched pipeline does with the
chunks of one long file), for comparison with the pool.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

from bench.calls import calibration
from bot.providers.whisper import MODEL_RATE, WhisperSTT, _cores
from media import wav
from media.resample import resample

REPO = Path(__file__).resolve().parent.parent
FILES = ["open_tomorrow_joe.wav", "address_joe.wav", "leave_message_joe.wav"]


async def run(args: argparse.Namespace) -> None:
    clips = [wav.read((REPO / "examples" / "callers" / f).read_bytes()) for f in FILES]
    print(calibration())
    for window, pool in [(float(w), int(p)) for w in args.windows.split(",") for p in args.pools.split(",")]:
        stt = WhisperSTT(window_s=window, pool=pool)
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
            print(f"window {window:4.0f} s  pool {pool} x {stt._threads} threads  K={k:<2}  stt p50 {statistics.median(lat) * 1000:6.0f} ms  "
                  f"max {lat[-1] * 1000:6.0f} ms  batch wall {wall * 1000:6.0f} ms  redone {stt.redone}")
            if pool == 1 and k > 1:
                t0 = time.perf_counter()
                await asyncio.to_thread(batched, stt, [clips[i % len(clips)] for i in range(k)], window)
                print(f"window {window:4.0f} s  batched  x {stt._threads} threads  K={k:<2}  every turn waits the batch: "
                      f"{(time.perf_counter() - t0) * 1000:6.0f} ms")
        await stt.close()
    print(f"cores {_cores()}; clips {', '.join(f'{c.seconds:.1f} s' for c in clips)}")


def batched(stt: WhisperSTT, clips: list[wav.Audio], window: float) -> list[str]:
    """K utterances as one batch on the model: one encode of K windows, one decode."""
    from faster_whisper.tokenizer import Tokenizer

    model = stt._model
    tok = Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
    prompt = model.get_prompt(tok, previous_tokens=[], without_timestamps=True)
    frames = int(window * model.frames_per_second)
    feats = []
    for c in clips:
        audio = np.frombuffer(resample(c.pcm16, c.rate, MODEL_RATE), dtype="<i2").astype(np.float32) / 32768.0
        f = model.feature_extractor(audio)[..., :-1]
        feats.append(np.pad(f, ((0, 0), (0, max(0, frames - f.shape[-1]))))[:, :frames])
    encoded = model.encode(np.stack(feats))
    results = model.model.generate(encoded, [list(prompt) for _ in clips], beam_size=1, max_length=model.max_length)
    return [tok.decode(r.sequences_ids[0]) for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", default="1,4,8")
    ap.add_argument("--pools", default="1,2")
    ap.add_argument("--windows", default="30,15", help="WHISPER_WINDOW_S values to compare")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
