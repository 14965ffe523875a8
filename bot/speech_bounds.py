"""How much text one TTS request may carry, whatever wrote it (an LLM, the receptionist
reading back what a caller typed, a prompt).

A neural TTS's time and memory grow with the length of one sentence (piper ran out of
gigabytes on a 1,000-digit number read as one sentence), and a cloud TTS bills by the
character. So every sentence sent to any TTS is at most ``MAX_SENTENCE_CHARS``: a longer
one is cut at a clause or a word boundary (mid-word only when one word is longer), and a
reply stops after ``MAX_REPLY_CHARS`` of text. A run of more than ``MAX_SPOKEN_DIGITS``
digits (longer than any phone number, E.164) is said as "a long number", whoever wrote it:
an LLM reading back what a caller keyed in would otherwise speak it. Pure functions, no I/O.
"""

from __future__ import annotations

import re

MAX_SENTENCE_CHARS = 200  # one TTS request; a spoken sentence of ~12 s
MAX_REPLY_CHARS = 1200  # one reply's text (about 75 s of speech); the rest is not said
MAX_SPOKEN_DIGITS = 15  # E.164: no phone number is longer

_LONG_DIGITS = re.compile(rf"\d{{{MAX_SPOKEN_DIGITS + 1},}}")

_CUT = re.compile(r"[,;:]\s+|\s+")  # where a long sentence may be cut: a clause, else a space


def bounded(text: str, limit: int = MAX_SENTENCE_CHARS) -> list[str]:
    """``text`` as pieces of at most ``limit`` characters, cut at the last clause mark or
    space before the limit (a clause mark stays with its piece); empty pieces dropped."""
    out: list[str] = []
    rest = _LONG_DIGITS.sub("a long number", text).strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = None
        for m in _CUT.finditer(window):
            if 0 < m.start() <= limit:
                cut = m
        if cut is None:  # one word longer than the limit
            head, rest = rest[:limit], rest[limit:]
        else:
            head, rest = window[: cut.start() + (1 if window[cut.start()] in ",;:" else 0)], rest[cut.end():]
        if head.strip():
            out.append(head.strip())
        rest = rest.strip()
    if rest:
        out.append(rest)
    return out


class ReplyBudget:
    """The characters a reply may still say: ``take(sentence)`` returns the part of it
    that fits (cut at a word), "" once the budget is spent; ``cut`` says whether any text was dropped."""

    def __init__(self, limit: int = MAX_REPLY_CHARS) -> None:
        self.left = limit
        self.cut = False

    def take(self, sentence: str) -> str:
        if len(sentence) <= self.left:
            self.left -= len(sentence)
            return sentence
        self.cut = True
        if self.left <= 0:
            return ""
        head = sentence[: self.left]
        if " " in head:
            head = head.rsplit(" ", 1)[0]
        self.left = 0
        return head.strip()
