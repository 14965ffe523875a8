"""In-process scripted providers: set an output, a delay, or an exception.

They implement the STT/LLM/TTS protocols directly, for testing the orchestrator,
the HTTP route and the call session without any engine. Wire-level fakes of the
real vendors live in tests/fakes/cloud.py.
"""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass, field

from bot.conversation import Action, Conversation
from bot.errors import StageError
from media import mulaw


def tone_pcm(ms: int, rate: int = 8000, freq: float = 440.0, amp: int = 8000) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


class _Faulty:
    """``error``/``hang`` apply ``times`` times (None: always), then the fake recovers."""

    times: int | None = None

    def _fault(self) -> bool:
        if not (self.error or self.hang or getattr(self, "empty", False)):
            return False
        if self.times is None:
            return True
        if self.times > 0:
            self.times -= 1
            return True
        return False


@dataclass
class ScriptedSTT(_Faulty):
    name: str = "scripted-stt"
    text: str = "what time do you open tomorrow"
    delay: float = 0.0
    error: StageError | None = None
    hang: bool = False
    times: int | None = None
    calls: list[tuple[int, int]] = field(default_factory=list)  # (bytes, rate)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        self.calls.append((len(pcm16), rate))
        fault = self._fault()
        if fault and self.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay)
        if fault and self.error:
            raise self.error
        return self.text


@dataclass
class ScriptedLLM(_Faulty):
    name: str = "scripted-llm"
    times: int | None = None
    text: str = "We open at nine. We close at five."
    first_delay: float = 0.0
    token_delay: float = 0.0
    error: StageError | None = None
    error_after_tokens: int = 0  # raise after this many deltas (0 = before the first)
    hang: bool = False
    actions: list[Action] = field(default_factory=list)
    seen: list[list[dict]] = field(default_factory=list)  # the messages of each request

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def reply(self, conversation: Conversation):
        self.seen.append([dict(m) for m in conversation.messages])
        fault = self._fault()
        if fault and self.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.first_delay)
        words = self.text.split(" ") if self.text else []
        for i, w in enumerate(words):
            if fault and self.error and i == self.error_after_tokens:
                raise self.error
            yield w if i == 0 else " " + w
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
        if fault and self.error and self.error_after_tokens >= len(words):
            raise self.error
        for a in self.actions:
            yield a


@dataclass
class ScriptedTTS(_Faulty):
    """Speaks ``ms_per_char`` of tone per character of text."""

    name: str = "scripted-tts"
    times: int | None = None
    pcm_rate: int = 16000
    ms_per_char: int = 10
    first_delay: float = 0.0
    chunk_ms: int = 100
    error: StageError | None = None
    hang: bool = False
    empty: bool = False
    texts: list[str] = field(default_factory=list)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def synthesize(self, text: str, *, mulaw: bool):
        self.texts.append(text)
        fault = self._fault()
        if fault and self.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.first_delay)
        if fault and self.error:
            raise self.error
        if fault and self.empty:
            return
        rate = 8000 if mulaw else self.pcm_rate
        pcm = tone_pcm(max(20, len(text) * self.ms_per_char), rate)
        audio = _encode(pcm) if mulaw else pcm
        step = (rate * self.chunk_ms // 1000) * (1 if mulaw else 2)
        for i in range(0, len(audio), step):
            yield audio[i : i + step]
            await asyncio.sleep(0)


def _encode(pcm: bytes) -> bytes:
    return mulaw.encode(pcm)
