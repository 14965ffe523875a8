"""How fast the turn controller runs a scripted conversation in virtual time.

    uv run python -m bench.turns [--seconds 30] [--runs 20]

Prints the wall time of one conversation (frames + decisions, no VAD, no I/O)."""

from __future__ import annotations

import argparse
import time

from bot.turns import Phase, TurnController, TurnOptions

FRAME = b"\xff" * 160


def conversation(seconds: float) -> int:
    """Greeting, then turns of 1.5 s speech + 0.9 s silence + a 2.5 s reply, one barge-in."""
    c = TurnController(TurnOptions())
    c.bot_done()
    t, decisions, n = 0.0, 0, 0
    while t < seconds:
        n += 1
        plan = [(True, 1500), (False, 900)] + ([(False, 700), (True, 400), (False, 900)] if n % 4 == 0 else [(False, 2500)])
        for speech, ms in plan:
            for _ in range(ms // 20):
                t += 0.02
                out = c.on_frame(FRAME, speech, t)
                decisions += len(out)
            if c.phase is Phase.THINKING:
                c.bot_speaking()
        c.bot_done()
    return decisions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    conversation(a.seconds)
    t0 = time.perf_counter()
    for _ in range(a.runs):
        d = conversation(a.seconds)
    per = (time.perf_counter() - t0) / a.runs
    print(f"{a.seconds:g} s conversation: {per * 1000:.2f} ms wall ({int(a.seconds * 50)} frames, {d} decisions), "
          f"{a.seconds / per:,.0f}x real time")


if __name__ == "__main__":
    main()
