"""A batch STT engine (whisper, Deepgram's prerecorded API) as an ``STTStream``.

The stream runs its own VAD turn detector over the audio it is sent: it buffers the
speech, and at the end of speech (``END_SILENCE_MS`` of silence) or on ``finalize()``
it runs the batch engine on what it buffered and emits ``Final(speech_final=True)``
(``from_finalize=True`` for a finalize). A failed transcription is a ``Failed`` only
when it is not an empty result (silence recognised as nothing is not an error).
So a session, or a failover chain, sees one kind of STT: a stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from bot.errors import EMPTY_RESULT, StageError
from bot.logs import kv
from bot.providers.base import STT
from bot.providers.stt_stream import Failed, Final, SpeechStarted, STTEvent
from media import mulaw
from media.vad import TurnDetector, TurnEvent, Vad

log = logging.getLogger("bot.providers.vad_stream")


class VadStream:
    """One call's stream over a batch engine."""

    def __init__(self, engine: STT, *, end_silence_ms: int, min_speech_ms: int, start_ms: int, aggressiveness: int, call_sid: str = "") -> None:
        self._engine = engine
        self.call_sid = call_sid
        self.error: StageError | None = None
        self._vad = Vad(aggressiveness)
        self._turns = TurnDetector(end_silence_ms=end_silence_ms, min_speech_ms=min_speech_ms, start_ms=start_ms)
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self._jobs: set[asyncio.Task[None]] = set()
        self._closed = False

    def send(self, mulaw_audio: bytes) -> None:
        if self._closed or self.error is not None:
            return
        for i in range(0, len(mulaw_audio) - 159, 160):
            frame = mulaw_audio[i : i + 160]
            ev = self._turns.feed(frame, self._vad.is_speech_ulaw(frame))
            if ev is TurnEvent.SPEECH_START:
                self._events.put_nowait(SpeechStarted())
            elif ev is TurnEvent.TURN_END:
                self._transcribe(self._turns.take_audio(), from_finalize=False)

    async def finalize(self) -> None:
        if self._closed or self.error is not None:
            return
        audio = self._turns.take_audio() if self._turns.in_speech else b""
        job = self._transcribe(audio, from_finalize=True)
        await asyncio.wait({job})

    def _transcribe(self, audio: bytes, *, from_finalize: bool) -> asyncio.Task[None]:
        job = asyncio.get_running_loop().create_task(self._run(audio, from_finalize))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def _run(self, audio: bytes, from_finalize: bool) -> None:
        text = ""
        if audio:
            try:
                text = (await self._engine.transcribe(mulaw.decode(audio), 8000)).strip()
            except StageError as err:
                if err.code != EMPTY_RESULT:
                    log.warning("batch stt failed", extra=kv(call_sid=self.call_sid, code=err.code, provider=err.provider))
                    self.error = err
                    self._events.put_nowait(Failed(err))
                    self._events.put_nowait(None)
                    return
        if text or from_finalize:
            self._events.put_nowait(Final(text, speech_final=True, from_finalize=from_finalize))

    async def events(self) -> AsyncIterator[STTEvent]:
        while True:
            ev = await self._events.get()
            if ev is None:
                self._events.put_nowait(None)
                return
            yield ev

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for job in list(self._jobs):
            job.cancel()
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=1.0)
        self._events.put_nowait(None)


class VadStreamSTT:
    """``StreamingSTT`` over a batch engine (the app-wide side)."""

    def __init__(self, engine: STT, *, end_silence_ms: int = 700, min_speech_ms: int = 200, start_ms: int = 120, aggressiveness: int = 2) -> None:
        self.engine = engine
        self.name = f"{engine.name}+vad"
        self._opts = dict(end_silence_ms=end_silence_ms, min_speech_ms=min_speech_ms, start_ms=start_ms, aggressiveness=aggressiveness)

    async def start(self) -> None:
        """The engine is started with the app's providers."""

    async def close(self) -> None: ...

    async def open(self, *, call_sid: str = "") -> VadStream:
        return VadStream(self.engine, call_sid=call_sid, **self._opts)
