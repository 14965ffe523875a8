"""Word error rate, for checking speech recognition against reference transcripts.

Both sides are normalised the same way (case, punctuation, digits spelled out), so
"555-213" and "five five five, two one three" compare equal.
"""

from __future__ import annotations

import re

_DIGITS = "zero one two three four five six seven eight nine".split()
_WORD = re.compile(r"[a-z']+|[0-9]+")
_SPELLING = {"ok": "okay", "o'clock": "oclock", "a.m.": "am", "p.m.": "pm"}


def normalize(text: str) -> list[str]:
    t = text.lower().replace("a.m.", "am").replace("p.m.", "pm")
    words: list[str] = []
    for w in _WORD.findall(t):
        w = _SPELLING.get(w, w).strip("'")
        if w.isdigit():
            words.extend(_DIGITS[int(d)] for d in w)
        elif w:
            words.append(w)
    return words


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Errors per reference word (substitutions + deletions + insertions)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return float(bool(hyp))
    return edit_distance(ref, hyp) / len(ref)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Total errors over total reference words."""
    errors = words = 0
    for ref, hyp in pairs:
        r = normalize(ref)
        errors += edit_distance(r, normalize(hyp))
        words += len(r)
    return errors / words if words else 0.0
