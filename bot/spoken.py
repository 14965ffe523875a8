"""What a language model's text may become before a caller hears it or the history keeps it.

A model behind an OpenAI-compatible server can emit what was never meant to be spoken:
its chat template's tokens (``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ``<|eot_id|>``), HTML
and its entities, markdown, URLs, emoji, a tool call written out as JSON, the start of an
invented next turn ("User: ..."), or its own instructions read back. ``SpokenText`` takes
the streamed deltas and gives back only what a receptionist would say aloud:

- it cuts the text into clauses (ending in ``. ! ? , ; :`` or a line break), and holds a
  clause back while a construct is open (a ``<`` without ``>``, ``{`` without ``}``, an
  entity without ``;``, a ``[`` without ``]``, a code fence), so a token split across
  deltas is still recognised;
- an end-of-turn token or the start of another speaker's turn ends the reply (``stopped``);
- a clause that names a tool or repeats a run of words from the instructions is dropped;
- entities are decoded (``&#39;`` -> ``'``; a model's double-escaped ``&amp;#39;`` too, at
  most three layers), and the result is plain text, so nothing stored is ever escaped again.

Pure and synchronous; no I/O. The text it returns is also what the history stores, so
junk never goes back to the model either.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable

# The end of the reply: an end-of-turn token, or the start of someone else's turn.
_STOP = re.compile(
    r"<\|(?:im_end|eot_id|end|endoftext|end_of_text|eom_id|user|system)\|>"
    r"|<\|im_start\|>\s*(?:user|system|tool)"
    r"|<\|start_header_id\|>\s*(?:user|system|ipython|tool)"
    r"|<start_of_turn>\s*user|<end_of_turn>|</s>|\[INST\]|<<SYS>>"
    r"|(?:^|\n|(?<=[.!?])[ \t]+)[ \t]*(?:#{1,4}[ \t]*)?(?:user|human|caller|customer|system|instruction)[ \t]*:",
    re.IGNORECASE,
)
# Template tokens that carry no words: removed where they stand (with an assistant role name).
_TEMPLATE = re.compile(
    r"<\|im_start\|>\s*(?:assistant)?|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>"
    r"|<\|[a-z_]{1,30}\|>|<start_of_turn>\s*(?:model)?|\[/INST\]|<</SYS>>|<s>|<bos>|<eos>|<unk>|<pad>"
    r"|^[ \t]*(?:assistant|receptionist|bot|ai)[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)
_TOOL_BLOCK = re.compile(r"<(tool_call|function_call|tools|tool_response)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9_-]*(?:\s[^<>]{0,300})?/?>")
_LINK = re.compile(r"\[([^\]\n]{1,120})\]\([^)\s]{0,300}\)")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*(?:[-*+\u2022\u25aa\u2023]|\d{1,2}[.)])[ \t]+", re.MULTILINE)
_EMPHASIS = re.compile(r"\*{1,3}|_{2,3}|~~|`+|(?<!\w)_(?=\w)|(?<=\w)_(?!\w)")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
_WORD = re.compile(r"[a-z0-9']+")

_NESTS = re.compile(r"[{}<>`]")
_PLAIN_END = re.compile(r"\n|[.!?,;:](?=\s)")
_LIST_NO = re.compile(r"(?:^|\n)[ \t]*\d+$")
_TRIGGER = re.compile(r"[.!?,;:\n<>\[\]|{}`&]")  # a delta without these cannot end a clause, a token or an entity
_ENTITY_OPEN = re.compile(r"&#?\w{0,8}$")
_LINK_OPEN = re.compile(r"\]\([^)\s]*$")
_TOKEN_OR_TURN = re.compile(r"<\|?[\w|]*$|\n[ \t]*#*[ \t]*\w{0,12}$")
_TOOL_OPEN = re.compile(r"<(tool_call|function_call|tools|tool_response)>(?![\s\S]*</\1>)", re.IGNORECASE)
_SPECIAL = re.compile(r"[<>{}\[\]&*_`#|~\n\\^]|https?:|www\.|^\s*(?:[-+]|\d{1,2}[.)])\s|^\s*(?:assistant|receptionist|bot|ai)\s*:",
                      re.IGNORECASE | re.MULTILINE)
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r" +(?=[.,!?;:](?:\s|$))")
HOLD_LIMIT = 600  # an open construct longer than this is not one: let the text go
LONG_CLAUSE = 12  # words held waiting for a clause end before they are let go
ECHO_WORDS = 7  # this many words in a row from the instructions: the model is reading them out


def _open_brace(buf: str) -> int:
    """Where the outermost unclosed ``{`` starts (-1: every brace is closed)."""
    depth = 0
    first = -1
    for i, ch in enumerate(buf if "{" in buf else ""):
        if ch == "{":
            if depth == 0:
                first = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
    return first if depth else -1


def _open_at(buf: str) -> int:
    """Where an unfinished construct starts in ``buf`` (-1: none), so the text from there
    is held until it closes (or grows past HOLD_LIMIT)."""
    starts = []
    fences = buf.count("```")
    if fences % 2:
        starts.append(buf.rfind("```"))
    starts.append(_open_brace(buf))
    lt = buf.rfind("<")
    if lt >= 0 and ">" not in buf[lt:]:
        starts.append(lt)
    lb = buf.rfind("[")
    if lb >= 0 and "]" not in buf[lb:]:
        starts.append(lb)
    m = _LINK_OPEN.search(buf)
    if m:
        starts.append(buf.rfind("[", 0, m.start() + 1))
    m = _TOOL_OPEN.search(buf)
    if m:
        starts.append(m.start())
    m = _ENTITY_OPEN.search(buf)
    if m:
        starts.append(m.start())
    m = _TOKEN_OR_TURN.search(buf)  # maybe a token or a "User:" line coming
    if m:
        starts.append(m.start())
    starts = [s for s in starts if s >= 0 and len(buf) - s <= HOLD_LIMIT]
    return min(starts) if starts else -1


def _cuts(text: str, *, spaces: bool = False) -> list[int]:
    """Positions just after each clause end in ``text`` that is not inside braces, a code
    fence or a tag (a comma inside a tool call's JSON does not end a clause); with
    ``spaces``, after each such space too."""
    if not spaces and not _NESTS.search(text):  # the usual case: plain words, one regex
        return [m.end() for m in _PLAIN_END.finditer(text) if not (m.group() == "." and _LIST_NO.search(text, 0, m.start()))]
    out = []
    depth = 0
    fence = tag = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("```", i):
            fence = not fence
            i += 3
            continue
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch == "<":
            tag = True
        elif ch == ">":
            tag = False
        elif not (depth or fence or tag):
            end = ch in ".!?,;:" and i + 1 < n and text[i + 1].isspace()
            if end and ch == "." and text[text.rfind("\n", 0, i) + 1 : i].strip().isdigit():
                end = False  # "2. " opening a line is a list number, not a sentence's end
            if ch == "\n" or end or (spaces and ch == " "):
                out.append(i + 1)
        i += 1
    return out


def _speak_url(m: re.Match) -> str:
    host = re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group(0), flags=re.IGNORECASE)
    host = re.split(r"[/?#:]", host, maxsplit=1)[0].rstrip(".,;")
    return " dot ".join(p for p in host.split(".") if p) if host else ""


def clean(text: str) -> str:
    """The words of ``text`` with markup, template tokens, tool calls, URLs and emoji gone
    and entities decoded once. Line breaks become sentence or clause breaks."""
    if text.isascii() and not _SPECIAL.search(text):  # plain words (most clauses): spacing only
        return _SPACE_BEFORE_PUNCT.sub("", _SPACES.sub(" ", text))
    text = _TOOL_BLOCK.sub(" ", text)
    text = _CODE_BLOCK.sub(" ", text)
    text = _TEMPLATE.sub(" ", text)
    text = re.sub(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", " ", text)  # JSON, two levels deep
    text = _TAG.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(_speak_url, text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub("", text)
    for _ in range(3):  # "&amp;#39;" is an apostrophe to a listener; bounded, never compounding
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = _EMOJI.sub("", text)
    text = re.sub(r"[<>{}\[\]|\\^]", " ", text)
    text = re.sub(r"(?<=[^\s.!?,;:])[ \t]*\n\s*", ". ", text)
    return _SPACE_BEFORE_PUNCT.sub("", _SPACES.sub(" ", text))


@functools.lru_cache(maxsize=64)
def _tool_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    escaped = [re.escape(n) for n in names if n]
    return re.compile(r"(?<![\w])(?:functions\.)?(?:" + "|".join(escaped) + r")(?![\w])", re.IGNORECASE) if escaped else None


@functools.lru_cache(maxsize=64)
def _runs(texts: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """Every run of ECHO_WORDS words in ``texts``, and every shorter run that starts one
    (the same instructions come every turn)."""
    out: set[tuple[str, ...]] = set()
    for text in texts:
        words = _WORD.findall(text.lower())
        for n in range(1, ECHO_WORDS + 1):
            out.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return frozenset(out)


class SpokenText:
    """Streamed model text in, speakable text out (see the module docstring).

    ``tool_names``: the tools the model has, never to be said; ``instructions``: texts the
    model was told and must not read out (its system prompt's instructions, not the
    business facts, which it may well repeat)."""

    def __init__(self, *, tool_names: Iterable[str] = (), instructions: Iterable[str] = ()) -> None:
        self._buf = ""
        self.stopped = False  # an end-of-turn or another speaker's turn was seen
        self.dropped = 0  # clauses dropped as echoes or tool names
        self._said_any = False
        self._tail = ""  # the last character said
        self._spaced = False  # what was said ends in a space
        self._gap = False  # a completion ended: the next words need a space before them
        self._recent: list[str] = []  # the last words of the clause before, for the echo check
        self._tools = _tool_pattern(tuple(tool_names))
        self._echo = _runs(tuple(instructions))

    def feed(self, delta: str) -> str:
        """The speakable text that ``delta`` completes (often "": a clause is still open)."""
        if self.stopped or not delta:
            return ""
        self._buf += delta
        if not _TRIGGER.search(delta) and self._buf.count(" ") <= LONG_CLAUSE:
            return ""  # mid-clause: nothing can have ended
        m = _STOP.search(self._buf)
        if m is not None:
            head, self._buf = self._buf[: m.start()], ""
            self.stopped = True
            return self._emit_all(head, [*(c for c in _cuts(head) if c < len(head)), len(head)])
        hold = _open_at(self._buf)
        ready = self._buf if hold < 0 else self._buf[:hold]
        cuts = _cuts(ready)
        if not cuts and ready.count(" ") > LONG_CLAUSE:  # a slow model's long clause: words as they come
            cuts = _cuts(ready, spaces=True)[-1:]
        if not cuts:
            return ""
        start = 0
        for end in cuts:  # opening words that may begin the instructions wait for enough to tell
            if self._said_any or self.dropped or not self._may_echo(_WORD.findall(self._buf[:end].lower())):
                start = end
        ready, self._buf = self._buf[:start], self._buf[start:]
        return self._emit_all(ready, [c for c in cuts if c <= start])

    def flush(self, *, whole_only: bool = False) -> str:
        """What is left at the end of the reply (or of one completion of it: what the next
        says starts a new sentence). ``whole_only``: the reply was cut short (a token
        limit or time budget): an unfinished last sentence is not said."""
        rest, self._buf = self._buf, ""
        if self.stopped:
            return ""
        if whole_only:
            ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]*(?=\s|$)", rest)]
            rest = rest[: ends[-1]] if ends else ("" if self._said_any else rest)
        out = self._emit_all(rest, [*(c for c in _cuts(rest) if c < len(rest)), len(rest)])
        self._gap = True
        return out

    def _emit_all(self, text: str, ends: list[int]) -> str:
        """The clauses of ``text`` (ending at ``ends``), each judged with the words of the
        clauses after it in view."""
        if not text:
            return ""
        pieces = [text[a:b] for a, b in zip([0, *ends], ends, strict=False) if b > a]
        cleaned = [clean(p) for p in pieces]
        words = [_WORD.findall(c.lower()) for c in cleaned]
        return "".join(self._emit(p, c, [w for later in words[i + 1 :] for w in later])
                       for i, (p, c) in enumerate(zip(pieces, cleaned, strict=True)))

    def _emit(self, raw: str, out: str, ahead: list[str]) -> str:
        """One clause (``out``: ``raw`` cleaned), or "" when it is junk, names a tool or
        reads the instructions (``ahead``: the words that follow it, already here)."""
        if not raw:
            return ""
        if raw.lstrip(" \t").startswith("\n") and self._tail not in ".!?,;:":
            out = "." + out  # a line break after unpunctuated words ends a sentence
        words = _WORD.findall(out.lower())
        recent, self._recent = self._recent, (self._recent + words)[-(ECHO_WORDS - 1) :]
        if not out.strip(" ."):
            if not (self._said_any and out and out.strip() == "" and not self._spaced):
                return ""
            self._spaced = True
            return " "
        if self._tools is not None and self._tools.search(raw) or self._echoes(recent, words, ahead):
            self.dropped += 1
            return ""
        if not self._said_any:
            out = out.lstrip(" .")
        elif self._gap and not out[:1].isspace():
            out = " " + out
        elif self._spaced and out[:1].isspace():
            out = out.lstrip()
        self._gap = False
        self._said_any = True
        self._tail = out.rstrip()[-1:]
        self._spaced = out[-1:].isspace()
        return out

    def _may_echo(self, words: list[str]) -> bool:
        """Could these opening words be the start of the instructions read out?"""
        return 0 < len(words) < ECHO_WORDS and tuple(words) in self._echo

    def _echoes(self, before: list[str], words: list[str], ahead: list[str]) -> bool:
        """Does a run of ECHO_WORDS words from the instructions cover a word of this clause
        (the run may begin in the clauses before it, or end in those after it)?"""
        if not self._echo or not words:
            return False
        seq = before + words + ahead
        lo, hi = len(before), len(before) + len(words)
        return any(tuple(seq[i : i + ECHO_WORDS]) in self._echo for i in range(max(0, lo - ECHO_WORDS + 1), min(hi, len(seq) - ECHO_WORDS + 1)))


def speakable(text: str, **kw) -> str:
    """``text`` as a whole through ``SpokenText`` (for a reply that came in one piece)."""
    s = SpokenText(**kw)
    return (s.feed(text) + s.flush()).strip()
