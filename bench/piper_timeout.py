"""How long a timed-out embedded TTS job keeps piper's one thread (issue 21 item 1).

    uv run --extra local python -m bench.piper_timeout

Prints the time of one synthesis step (a piece of PIECE_CHARS), how long the next
caller's short sentence takes after a 5,000-character read-back (a 1,000-digit number)
was abandoned 0.3 s into its second step, and how long the interpreter's exit waits
for the thread while such a job is in flight. Before bot/speech_bounds.py the
read-back was one step: the thread was held for all of it (the issue: 15 s past the
5 s timeout, and gigabytes of memory).
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SPOKEN = "zero one two three four five six seven eight nine".split()
READ_BACK = "I have your number as " + " ".join(SPOKEN[int(c)] for c in "5" * 1000) + "."


async def main_async() -> float:
    from bot.providers.piper import PIECE_CHARS, PiperTTS
    from bot.speech_bounds import bounded

    tts = PiperTTS()
    await tts.start()
    piece = bounded(READ_BACK, PIECE_CHARS)[0]
    t = time.perf_counter()
    [c async for c in tts.synthesize(piece, mulaw=True)]
    one = time.perf_counter() - t
    job = tts.synthesize(READ_BACK, mulaw=True)
    await job.__anext__()
    try:
        async with asyncio.timeout(0.3):  # the stage's timeout, met mid-job
            await job.__anext__()
    except TimeoutError:
        pass
    await job.aclose()
    t = time.perf_counter()
    [c async for c in tts.synthesize("Next caller, hello.", mulaw=True)]
    print(f"one step ({len(piece)} chars): {one:.2f} s; the next caller's sentence after a timed-out "
          f"{len(READ_BACK)}-char job: {time.perf_counter() - t:.2f} s", flush=True)
    job = tts.synthesize(READ_BACK, mulaw=True)
    await job.__anext__()  # a job in flight when the process exits
    return time.perf_counter()


def main() -> int:
    t0 = asyncio.run(main_async())
    atexit.register(lambda: print(f"exit waited {time.perf_counter() - t0:.2f} s for the piper thread", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
