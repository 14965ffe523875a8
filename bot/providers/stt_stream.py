"""The streaming speech-to-text contract: one place for its event types and shapes.

A ``StreamingSTT`` (one per app) opens one ``STTStream`` per call. The call sends the
caller's 8 kHz mu-law as it arrives, asks for a ``finalize()`` when its own VAD heard
the end of the turn first, iterates ``events()`` and closes the stream at the end::

    stream = await live.open(call_sid=sid)   # never raises; a failed open has .error set
    stream.send(frame, voiced=speech)        # never blocks
    await stream.finalize()                  # a Final(from_finalize=True) follows
    async for ev in stream.events(): ...     # ends after Failed or aclose()
    await stream.aclose()

Events (vendor-neutral; a vendor module maps its messages onto these):

- ``SpeechStarted``: the engine heard speech begin (a hint; the local VAD owns barge-in).
- ``Interim(text)``: a running guess for the words since the last final; may change.
- ``Final(text, speech_final, from_finalize)``: settled text. ``speech_final``: the
  engine's endpointing saw the speaker pause; ``from_finalize`` answers ``finalize()``.
- ``UtteranceEnd``: no new word for a while (works in noise, where endpointing may not).
- ``Reconnected``: the socket dropped and was re-opened; unfinalised audio was replayed.
- ``Failed(StageError)``: the stream is dead; nothing follows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bot.errors import StageError


@dataclass(frozen=True)
class Interim:
    text: str


@dataclass(frozen=True)
class Final:
    text: str
    speech_final: bool
    from_finalize: bool = False


@dataclass(frozen=True)
class UtteranceEnd:
    last_word_end: float | None = None


@dataclass(frozen=True)
class SpeechStarted:
    timestamp: float | None = None


@dataclass(frozen=True)
class Reconnected:
    attempts: int  # handshakes it took
    replayed_ms: int  # unfinalised audio sent again


@dataclass(frozen=True)
class Failed:
    error: StageError


STTEvent = Interim | Final | UtteranceEnd | SpeechStarted | Reconnected | Failed


@runtime_checkable
class STTStream(Protocol):
    """One call's stream. ``error`` is set when the stream failed (at open or later)."""

    error: StageError | None

    def send(self, mulaw: bytes, *, voiced: bool | None = None) -> None:
        """Queue caller audio (8 kHz mu-law). Never blocks. ``voiced``: the local VAD's
        verdict on it, which lets a stream batch audio where no timing hangs on it."""

    def events(self) -> AsyncIterator[STTEvent]:
        """The stream's events in order; one consumer only."""

    async def finalize(self) -> None:
        """Flush: a ``Final(from_finalize=True)`` follows for audio not yet finalised."""

    async def aclose(self) -> None:
        """Stop; idempotent and bounded."""


@runtime_checkable
class StreamingSTT(Protocol):
    """The app-wide side: opens one stream per call."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def open(self, *, call_sid: str = "") -> STTStream:
        """Open a stream; returns once it is usable or failed (``stream.error``)."""


__all__ = [
    "Failed",
    "Final",
    "Interim",
    "Reconnected",
    "STTEvent",
    "STTStream",
    "SpeechStarted",
    "StreamingSTT",
    "UtteranceEnd",
]
