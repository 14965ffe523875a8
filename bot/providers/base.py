"""The three provider kinds. Every adapter raises only ``StageError``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bot.conversation import Action, Conversation


@runtime_checkable
class STT(Protocol):
    name: str

    async def start(self) -> None:
        """Load models / open pools. Called once at app start-up."""

    async def close(self) -> None: ...

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Transcribe mono PCM16 audio at ``rate`` Hz. Raises StageError('stt', ...),
        including code 'empty_result' when nothing was recognised."""


@runtime_checkable
class LLM(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        """Stream the assistant's reply to ``conversation`` (whose last message is
        the user's) as text deltas, possibly followed by Actions. Does NOT append
        to the conversation: the caller records what was actually said.
        Raises StageError('llm', ...); an empty reply is 'empty_result'."""


@runtime_checkable
class TTS(Protocol):
    name: str
    pcm_rate: int  # sample rate of synthesize(..., mulaw=False) output

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        """Stream speech for ``text``: raw 8 kHz mu-law bytes when ``mulaw`` (the phone
        path), else raw mono PCM16 at ``pcm_rate``. Chunks may be any size.
        Raises StageError('tts', ...); no audio at all is 'empty_result'."""


@runtime_checkable
class Warmable(Protocol):
    """An adapter with a connection pool that can be warmed before a caller waits on it."""

    async def warm(self) -> None: ...
