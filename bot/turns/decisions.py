"""What the turn controller tells the session to do, and its phases.

Decisions are plain values; the session carries them out (cancel a task, clear the
playout, run the STT/LLM/TTS turn, say a prompt). Times are on whatever monotonic
clock the session feeds in (the frame's arrival time in a call, virtual time in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    GREETING = "greeting"  # the greeting plays; the caller may interrupt it
    LISTENING = "listening"  # the caller has the floor (a speculative turn may run, gated)
    THINKING = "thinking"  # a turn runs: STT / LLM / TTS before the first audio
    SPEAKING = "speaking"  # the bot's reply (or a reprompt) plays; interruptible
    CLOSING = "closing"  # the last words (goodbye, transfer): not interruptible, nothing starts
    ENDED = "ended"


# phase -> phases it may move to; anything else is a bug and raises IllegalPhase
ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.GREETING: frozenset({Phase.LISTENING, Phase.THINKING, Phase.CLOSING, Phase.ENDED}),
    Phase.LISTENING: frozenset({Phase.THINKING, Phase.SPEAKING, Phase.CLOSING, Phase.ENDED}),
    Phase.THINKING: frozenset({Phase.SPEAKING, Phase.LISTENING, Phase.CLOSING, Phase.ENDED}),
    Phase.SPEAKING: frozenset({Phase.LISTENING, Phase.THINKING, Phase.CLOSING, Phase.ENDED}),
    Phase.CLOSING: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class IllegalPhase(RuntimeError):
    pass


@dataclass(frozen=True)
class BargeIn:
    """Caller speech over the bot: cancel the running turn, clear the playout."""


@dataclass(frozen=True)
class StartSpeculative:
    """Run the turn now but gated: nothing plays until ``ConfirmSpeculative``.
    ``audio`` (mu-law, local VAD path) or ``text`` (a stable live interim)."""

    speech_end: float
    audio: bytes | None = None
    text: str | None = None
    stt_ms: float | None = None  # a live final's: end of speech to transcript (the turn's timings)


@dataclass(frozen=True)
class ConfirmSpeculative:
    """The caller is done and said what the speculative turn assumed: open its gate.
    ``stt_ms``: the live final that confirmed it, end of speech to transcript."""

    stt_ms: float | None = None


@dataclass(frozen=True)
class CancelSpeculative:
    """The caller went on (or said something else): cancel it and roll back."""


@dataclass(frozen=True)
class StartTurn:
    """Run a caller turn on ``audio`` (needs STT) or ``text`` (already transcribed)."""

    speech_end: float
    audio: bytes | None = None
    text: str | None = None
    stt_ms: float | None = None


@dataclass(frozen=True)
class FinalizeSTT:
    """The local VAD heard the end of turn before the live STT: ask it for its final."""


@dataclass(frozen=True)
class Reprompt:
    """The caller has been silent ``reprompt_after_s``: say the reprompt (the n-th)."""

    n: int


@dataclass(frozen=True)
class EndCall:
    """Say ``prompt`` (if any) and hang up or transfer. ``clear``: drop what still plays."""

    reason: str  # silence | transfer | drain (MAX_CALL_S is the session's wall-clock watchdog)
    prompt: str | None = "goodbye"
    transfer: bool = False
    clear: bool = False


Decision = BargeIn | StartSpeculative | ConfirmSpeculative | CancelSpeculative | StartTurn | FinalizeSTT | Reprompt | EndCall
