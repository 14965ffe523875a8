"""Does the caller's turn look complete? A pure judgement on the words heard so far.

The end of a caller's turn is detected from silence (the bot's VAD, Deepgram's
endpointing). A caller who pauses 300-600 ms mid-sentence ("Hello? ... Is anyone
there?", "My name is Sarah ... and my number is ...") then looks finished, the bot
starts to answer, and it talks over the rest. This module looks at the transcript
(no I/O, no asyncio, no clock) and says how sure the words are that the turn is over:

- ``COMPLETE``: answer after the normal end-of-turn silence;
- ``HOLD``: a whole sentence that callers often continue (a bare greeting, "My name
  is Sarah", "No, that's all." before the goodbye): wait a little longer;
- ``INCOMPLETE``: the words cannot end here (a trailing "and"/"but"/"um", a dangling
  "the"/"to"/"is", a trailing comma, a phone number with too few digits): wait the
  long silence, then answer anyway.

``judge(text)`` returns a ``Verdict``; ``silence_ms(verdict, normal_ms)`` turns it into
the silence to require after the end of speech. ``judge(text, audio_complete=p)``
takes the probability from an audio end-of-turn model (e.g. Smart Turn) as well: the
words' "cannot end here" always wins; otherwise a model sure the turn goes on turns
COMPLETE into HOLD, and a model sure it is over turns HOLD into COMPLETE.

How the turn controller uses it (``bot/turns/controller.py``, ``TURN_COMPLETENESS=true``):
with live STT, at each live final that ends a turn it judges the finals since the turn
began; with batch or embedded STT (the local VAD ends turns), the speculative turn
started at the early silence reports its transcript and that is judged. Either way the
reply is prepared at once (gated), but released only when the silence since the last
speech frame, counted on the inbound frame clock, reaches ``silence_ms(verdict,
normal)``. Speech that resumes before then cancels the prepared reply (nothing was
sent, so no ``clear``) and the turn goes on: the next final is judged with the words
before it, the next batch transcript is of the audio before it and after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["DEFAULT_WAITS", "Completeness", "Verdict", "Waits", "judge", "silence_ms"]


class Completeness(Enum):
    COMPLETE = "complete"
    HOLD = "hold"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Verdict:
    state: Completeness
    reason: str  # for logs and tests: which rule decided

    @property
    def complete(self) -> bool:
        return self.state is Completeness.COMPLETE


@dataclass(frozen=True)
class Waits:
    """Silence after the end of speech before a turn in each state is answered, ms.
    ``COMPLETE`` uses the caller's normal end-of-turn silence (``silence_ms``' argument)."""

    hold_ms: int = 900
    incomplete_ms: int = 1400


DEFAULT_WAITS = Waits()


def silence_ms(verdict: Verdict, normal_ms: int, waits: Waits = DEFAULT_WAITS) -> int:
    """The silence to require after the end of speech for this verdict (never less
    than ``normal_ms``)."""
    if verdict.state is Completeness.INCOMPLETE:
        return max(normal_ms, waits.incomplete_ms)
    if verdict.state is Completeness.HOLD:
        return max(normal_ms, waits.hold_ms)
    return normal_ms


_FILLERS = frozenset("um umm uh uhh uhm er erm ah hmm hm mm mhm".split())
_CONJUNCTIONS = frozenset("and but or so because cause cos coz if when while although though unless until whereas plus nor".split())
_SO_OK_AFTER = frozenset("think hope guess believe suppose said say do did not thought hoped".split())
_DETERMINERS = frozenset("a an the my your our their his its every each".split())
_PREPOSITIONS = frozenset("to for of with at from about into onto than as".split())
_AUX = frozenset("is are was were am be been being can could would should will shall must might may do does did have has had".split())
_CONTRACTIONS = frozenset("i'm it's that's there's what's where's who's here's he's she's we're you're they're i'll "
                          "you'll we'll they'll i'd we'd you'd i've we've you've they've let's".split())
_SUBJECTS = frozenset("i we they he she".split())
_PRONOUNS = _SUBJECTS | frozenset("you it that this there who which what".split())
_WANTS = frozenset("want need wanted needed going trying gonna wanna gotta hoping wondering like".split())
_WANTS_OK_IF = frozenset("all what whatever everything anything which".split())
_OBJ_VERBS = frozenset("tell give send show bring email text ask".split())
_OBJECTS = frozenset("me us him her them".split())
_WH = frozenset("what who whom where which when how why whose".split())
_GREETING = frozenset("hello hi hey hallo hiya there yes yeah good morning afternoon evening ok okay um uh oh well so".split())
_OPENERS = frozenset("hello hi hey hallo hiya morning afternoon evening".split())
_WRAP_UPS = ("that's all", "that is all", "that's it", "that's everything", "no thanks", "no thank you", "nothing else")
_DIGITS = frozenset("zero oh o one two three four five six seven eight nine".split())
_PHONE_CONTEXT = re.compile(r"\b(number|phone|cell|mobile|call me|reach me|call back|callback)\b")
_WORD = re.compile(r"[a-z0-9']+")
_INTRO = re.compile(r"^(?:(?:hi|hello|hey|yes|yeah)\s+)?(?:my name is|my name's|this is|it's|i am|i'm)\s+[a-z']+(?:\s+[a-z']+)?$")


def _digit_run(words: list[str]) -> int:
    """Digits in the number at the end of the words (numerals and spoken digits,
    "double five" = 2); 0 if the words do not end in a number."""
    count = 0
    for w in reversed(words):
        if w.isdigit():
            count += len(w)
        elif w in _DIGITS:
            count += 1
        elif w in ("double", "triple") and count:
            count += 1 if w == "double" else 2  # "double five": the five is counted once already
        else:
            break
    return count


def judge(text: str, *, audio_complete: float | None = None) -> Verdict:
    """How complete the caller's turn looks from its transcript so far (and, if given,
    ``audio_complete``: an audio model's probability that the turn is over)."""
    verdict = _judge_words(text)
    if audio_complete is None or verdict.state is Completeness.INCOMPLETE:
        return verdict
    if verdict.state is Completeness.COMPLETE and audio_complete < 0.2:
        return Verdict(Completeness.HOLD, f"words complete, audio model {audio_complete:.2f} says it goes on")
    if verdict.state is Completeness.HOLD and audio_complete > 0.8:
        return Verdict(Completeness.COMPLETE, f"{verdict.reason}; audio model {audio_complete:.2f} says it is over")
    return verdict


def _judge_words(text: str) -> Verdict:
    flat = " ".join(text.lower().replace("\u2019", "'").split())
    words = _WORD.findall(flat)
    if not words:
        return Verdict(Completeness.INCOMPLETE, "no words yet")
    question = flat.rstrip()[-1] == "?"
    verdict = _unfinished_tail(flat, words) or _may_go_on(flat, words)
    if verdict is not None:
        return verdict
    return Verdict(Completeness.COMPLETE, "question" if question else "no sign of more")


def _unfinished_tail(flat: str, words: list[str]) -> Verdict | None:
    """The sentence stops where it cannot end: a filler, a comma, a conjunction, a
    determiner or preposition, an auxiliary or subject with nothing after it."""
    tail = flat.rstrip()[-1]
    last, prev = words[-1], (words[-2] if len(words) > 1 else "")
    question = tail == "?"
    if last in _FILLERS:
        return Verdict(Completeness.INCOMPLETE, f"trailing filler {last!r}")
    if tail in ",-\u2026:;" or flat.endswith(".."):
        return Verdict(Completeness.INCOMPLETE, f"trailing {tail!r}")
    if last in _CONJUNCTIONS and not (last == "so" and prev in _SO_OK_AFTER):
        return Verdict(Completeness.INCOMPLETE, f"trailing conjunction {last!r}")
    if last in _DETERMINERS or last in _CONTRACTIONS:
        return Verdict(Completeness.INCOMPLETE, f"dangling {last!r}")
    if last in _PREPOSITIONS and not (words[0] in _WH or question and len(words) > 2 or "what" in words):
        return Verdict(Completeness.INCOMPLETE, f"dangling preposition {last!r}")
    if last in _AUX and prev not in _PRONOUNS and not (prev == "not" and len(words) > 2 and words[-3] in _PRONOUNS):
        if not (question and last in ("is", "are", "was", "were") and words[0] in _WH and len(words) > 2):
            return Verdict(Completeness.INCOMPLETE, f"dangling {last!r}")
    if last in _SUBJECTS and not question:
        return Verdict(Completeness.INCOMPLETE, f"dangling subject {last!r}")
    return _wants_an_object(words)


def _wants_an_object(words: list[str]) -> Verdict | None:
    """"I'd like", "we need", "call me": a verb whose object has not come yet."""
    last, prev = words[-1], (words[-2] if len(words) > 1 else "")
    if last in _WANTS and (prev in _SUBJECTS or prev in ("i'd", "we'd", "would", "feel", "i'm", "we're")):
        if not any(w in _WANTS_OK_IF for w in words[:-2]):
            return Verdict(Completeness.INCOMPLETE, f"{prev} {last} what?")
    if last in _OBJECTS and prev in _OBJ_VERBS:
        return Verdict(Completeness.HOLD, f"{prev} {last} what?")
    return None


def _may_go_on(flat: str, words: list[str]) -> Verdict | None:
    """A whole sentence after which more usually follows: part of a phone number, a bare
    greeting, a wrap-up before the goodbye, an introduction."""
    digits = _digit_run(words)
    if digits and digits < 10 and _PHONE_CONTEXT.search(flat):
        return Verdict(Completeness.INCOMPLETE, f"phone number with {digits} digits")
    if len(words) <= 4 and all(w in _GREETING for w in words) and any(w in _OPENERS for w in words):
        return Verdict(Completeness.HOLD, "a bare greeting: the caller may go on")
    if words[-1] not in ("bye", "goodbye") and any(flat.rstrip(".!?").endswith(w) for w in _WRAP_UPS):
        return Verdict(Completeness.HOLD, "a wrap-up: a goodbye may follow")
    if _INTRO.match(" ".join(words)):
        return Verdict(Completeness.HOLD, "an introduction: more may follow")
    return None
