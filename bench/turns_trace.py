"""The turn controller's behaviour as one digest: random scripts (frames, live STT events,
batch transcripts, digits, the bot's side, random options), every decision and phase
written out, hashed. Run it before and after a refactor that must not change behaviour
(same digest, same count), e.g. on a checkout of main and on the branch:

    uv run python -m bench.turns_trace [--seeds 3000] [--out trace.txt]

The lines (with ``--out``) show where two versions first differ."""

from __future__ import annotations

import argparse
import hashlib
import io
import random
from typing import TextIO

from bot.errors import StageError
from bot.providers.stt_stream import Failed, Final, Interim, SpeechStarted, UtteranceEnd
from bot.turns import TurnController, TurnOptions

TEXTS = ["what time do you open?", "my name is Sarah and", "I want to", "hello", "no that's all.", "call me back at 555 01", "um", "yes please", "I'd like to leave a message"]
FRAME = b"\xff" * 160

def run(seed: int, out: TextIO) -> None:
    rnd = random.Random(seed)
    opts = TurnOptions(
        end_silence_ms=rnd.choice([500, 700, 900]), early_turn_ms=rnd.choice([0, 200, 300, 400]),
        min_speech_ms=rnd.choice([100, 200]), barge_in_ms=rnd.choice([40, 80, 120]),
        reprompt_after_s=rnd.choice([2.0, 8.0]), max_reprompts=rnd.choice([0, 1, 2]),
        speculative_llm=rnd.random() < 0.7, can_transfer=rnd.random() < 0.5,
        max_turn_ms=rnd.choice([2000, 30000]), completeness=rnd.random() < 0.6,
        complete_ms=rnd.choice([None, 300, 600]), spec_lead_ms=rnd.choice([0, 400, 800]),
    )
    c = TurnController(opts, t0=0.0)
    t = 0.0
    speech = False
    vrnd = random.Random(seed * 7 + 1)
    for step in range(rnd.choice([1500, 4000])):
        r = rnd.random()
        try:
            if r < 0.93:
                if rnd.random() < 0.03:
                    speech = not speech
                t += 0.02
                ev = ("frame", c.on_frame(FRAME, speech, t, lambda: vrnd.random() < 0.5))
            elif r < 0.96:
                kind = rnd.random()
                text = rnd.choice(TEXTS)
                if kind < 0.35:
                    e = Interim(text)
                elif kind < 0.7:
                    e = Final(text if rnd.random() < 0.8 else "", speech_final=rnd.random() < 0.5, from_finalize=rnd.random() < 0.2)
                elif kind < 0.85:
                    e = UtteranceEnd(t)
                elif kind < 0.9:
                    e = SpeechStarted(t)
                else:
                    e = Failed(StageError("stt", "closed", "x", provider="p"))
                ev = ("stt", c.on_stt(e, t))
            elif r < 0.97:
                ev = ("transcript", c.on_transcript(c.turn_no - rnd.choice([0, 0, 1]), rnd.choice(TEXTS + [None])))
            elif r < 0.972:
                ev = ("dtmf", c.on_dtmf(rnd.choice("12345#" * 5 + "0"), t, can_transfer=rnd.choice([None, True, False])))
            elif r < 0.98:
                c.bot_speaking()
                ev = ("speaking", [])
            elif r < 0.995:
                c.bot_done(rnd.choice([None, c.turn_no, c.turn_no - 1]))
                ev = ("done", [])
            elif r < 0.996:
                c.turn_crashed(rnd.choice([None, c.turn_no]))
                ev = ("crashed", [])
            elif r < 0.999:
                c.stt_attached()
                ev = ("attach", [])
            elif r < 0.9997:
                ev = ("end_now", c.end_now())
            else:
                c.closing()
                ev = ("closing", [])
        except Exception as exc:
            ev = ("exc", type(exc).__name__ + str(exc))
        if ev[1] or ev[0] not in ("frame",):
            out.write(f"{seed} {step} {ev[0]} {ev[1]!r} {c.phase.value} {c.turn_no} {c.speculating} {c.live}\n")
    out.write(f"{seed} end {c.phase.value} {c.turn_no} {c.barge_ins} {c.reprompts} {c.dtmf_dropped}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3000)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    buf = io.StringIO()
    for seed in range(a.seeds):
        run(seed, buf)
    text = buf.getvalue()
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    kinds = ("StartSpeculative", "ConfirmSpeculative", "CancelSpeculative", "StartTurn", "BargeIn", "FinalizeSTT", "Reprompt", "EndCall")
    counts = ", ".join(f"{k} {text.count(k + '(')}" for k in kinds)
    print(f"{a.seeds} scripts, {text.count(chr(10))} lines; decisions: {counts}")
    print(f"sha256 {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
