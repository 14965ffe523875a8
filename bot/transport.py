"""The transport seam: how a call's audio and signals reach the engine and leave it.

A transport is one carrier's adapter (Twilio Media Streams, the browser softphone,
a simulator): it yields inbound events (20 ms frames of 8 kHz mu-law, DTMF digits,
mark echoes, stop) and carries the engine's outbound intents (a 20 ms frame, a mark,
clear, close). It knows nothing of turns; ``bot.run_call.run_call`` owns the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class AudioIn(NamedTuple):  # 50 a second per call: a tuple is built faster than a frozen dataclass
    frame: bytes  # 20 ms of 8 kHz mu-law


@dataclass(frozen=True)
class DtmfIn:
    digit: str


@dataclass(frozen=True)
class MarkIn:
    """The carrier played everything queued before the mark ``name``."""

    name: str


@dataclass(frozen=True)
class StopIn:
    """The far end hung up; nothing follows. ``no_media``: the carrier ended the call itself
    because its media stopped (SIP's RTP timeout): the engine records it as its own
    media watchdog would (ended_by "silence", limit "no_media"), not as the caller's hang-up."""

    no_media: bool = False


Inbound = AudioIn | DtmfIn | MarkIn | StopIn


class Transport(Protocol):
    kind: str  # "twilio", "browser": a label for logs and metrics
    frames_per_message: int  # 20 ms frames the playout joins into one ``send_audio`` (1-10)
    call_sid: str
    stream_sid: str
    caller: str

    def inbound(self) -> AsyncIterator[Inbound]:
        """Inbound events until the far end stops or the socket closes."""

    async def send_audio(self, frame: bytes) -> None:
        """Whole 20 ms frames of 8 kHz mu-law: one, or several joined when the playout sends
        fewer, larger messages (the engine paces them on its media clock)."""

    async def send_mark(self, name: str) -> None:
        """Echo ``name`` back as a ``MarkIn`` once everything before it was played."""

    async def send_clear(self) -> None:
        """Drop whatever audio is buffered at the far end (barge-in)."""

    async def close(self) -> None:
        """End the call's connection (``inbound()`` then ends too); idempotent."""

    def summary(self) -> dict:
        """Transport-specific fields for the "call ended" log line."""
