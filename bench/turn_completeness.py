"""What the words-only turn-completeness judgement (bot/turn_completeness.py) costs and
how it does on the callers with mid-sentence pauses.

    uv run --extra local python -m bench.turn_completeness

- accuracy: each sample of examples/callers_pauses cut at each pause (the caller goes
  on: the judge should not say COMPLETE) and whole (it should), from the manifest's text;
  and every distinct sentence of the caller corpus, whole (COMPLETE, or HOLD for a bare
  greeting or a wrap-up);
- cost: CPU time per judgement over those transcripts and every word-by-word prefix of
  them (what a live STT's interims and finals would feed it), and per call: a call of
  3 turns that judges every interim (~4 a second of speech) and final.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls import AUDIO, PAUSES, calibration  # noqa: E402
from bot.turn_completeness import DEFAULT_WAITS, Completeness, Waits, judge, silence_ms  # noqa: E402

NORMAL_MS = 300  # the live path's end of turn: Deepgram endpointing 300 ms


def projection(pauses: list[dict], corpus: list[str], waits: Waits = DEFAULT_WAITS) -> None:
    """On the audio clock alone: a bot that answers once the silence reaches the judged
    wait talks over a pause that is at least that long; a turn that is over waits
    ``silence_ms - NORMAL_MS`` longer than it does today."""
    over_now = over_judged = n = 0
    for m in pauses:
        for k, p in enumerate(m["pauses"]):
            prefix = " ".join(x["text"] for x in m["pieces"][: k + 1])
            n += 1
            over_now += p["ms"] >= NORMAL_MS
            over_judged += p["ms"] >= silence_ms(judge(prefix), NORMAL_MS, waits)
    ends = [" ".join(x["text"] for x in m["pieces"]) for m in pauses] + corpus
    added = sorted(silence_ms(judge(t), NORMAL_MS, waits) - NORMAL_MS for t in ends)
    print(f"projection at a {NORMAL_MS} ms end-of-turn silence (hold {waits.hold_ms}, incomplete {waits.incomplete_ms} ms): "
          f"pauses answered mid-sentence {over_now}/{n} today, {over_judged}/{n} with the judge; "
          f"wait added to finished turns: p50 {added[len(added) // 2]} ms, max {added[-1]} ms over {len(added)} sentences")


def main() -> int:
    print(calibration())
    pauses = json.loads((PAUSES / "manifest.json").read_text())
    corpus = sorted({m["text"] for m in json.loads((AUDIO / "manifest.json").read_text())})
    right = total = 0
    print("examples/callers_pauses, cut at each pause and whole:")
    for m in pauses:
        pieces = [p["text"] for p in m["pieces"]]
        for k in range(1, len(pieces) + 1):
            text = " ".join(pieces[:k])
            v = judge(text)
            want_complete = k == len(pieces)
            ok = v.complete == want_complete
            right, total = right + ok, total + 1
            print(f"  {'whole' if want_complete else 'cut  '} {v.state.value:10s} {'ok   ' if ok else 'WRONG'} {text!r} ({v.reason})")
    print(f"  {right}/{total} right")
    print("caller corpus, whole sentences:")
    cr = 0
    for text in corpus:
        v = judge(text)
        cr += v.state is not Completeness.INCOMPLETE
        if v.state is not Completeness.COMPLETE:
            print(f"  {v.state.value:10s} {text!r} ({v.reason})")
    print(f"  {cr}/{len(corpus)} not judged incomplete")
    projection(pauses, corpus)
    texts = []
    for t in [" ".join(p["text"] for p in m["pieces"]) for m in pauses] + corpus:
        words = t.split()
        texts += [" ".join(words[:i]) for i in range(1, len(words) + 1)]
    reps = 200
    t0 = time.process_time()
    for _ in range(reps):
        for t in texts:
            judge(t)
    us = (time.process_time() - t0) / (reps * len(texts)) * 1e6
    per_turn = 4 * 3 + 1  # ~3 s of speech, an interim every 250 ms, one final
    print(f"cost: {us:.1f} us CPU per judgement ({len(texts)} transcripts x {reps}); "
          f"a 3-turn call judging every interim and final ({3 * per_turn} judgements): {us * 3 * per_turn / 1000:.2f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
