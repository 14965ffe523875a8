"""Caller-supplied text on its way out (a terminal, JSON lines, the console, a CSV) and
on its way in from a model's tool arguments: one place that knows which characters
can hurt.

Control characters (C0, C1: U+009B is a terminal's CSI), bidi overrides and isolates
(U+202E turns "gnp.exe" around), line and paragraph separators and other invisible
format characters (Unicode categories Cc, Cf, Zl, Zp) can rewrite a terminal, forge a
line or make the owner read something that is not there. ``visible`` shows each as an
escape (``\\u202e``) so the owner sees that it was there; ``clean`` (for values that
are stored) turns line breaks and tabs into spaces, drops the rest and bounds the
length. The zero-width joiner is kept: emoji sequences need it.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_KEEP = frozenset({"\u200d"})  # zero-width joiner (emoji)
_SPACES = re.compile(r"\s+")


def _unsafe(c: str) -> bool:
    return c not in _KEEP and unicodedata.category(c) in _UNSAFE_CATEGORIES


def visible(text: str) -> str:
    """``text`` with every unsafe character shown as a ``\\uXXXX`` escape (or ``\\n``...)."""
    if text.isprintable():  # the common case, fast: isprintable is False for every unsafe one
        return text
    out = []
    for c in text:
        if _unsafe(c):
            out.append(c.encode("unicode_escape").decode("ascii") if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out)


def clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: whitespace runs (CR, LF, tabs) become
    one space, other unsafe characters are dropped."""
    text = _SPACES.sub(" ", str(text))
    if not text.isprintable():
        text = "".join(c for c in text if not _unsafe(c))
    return text.strip()[:limit].strip()
