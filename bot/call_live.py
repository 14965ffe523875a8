"""A call's live STT stream, while one is attached: the session's inbound frames go to
it, and its events (finals, interims, a reconnect, a failure) to ``on_event`` (the
session hands them to the turn controller). A failure, reported or a bug in the
consumer, is counted and logged, the stream closed, and the call goes on with batch STT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.call_tasks import CallTasks
from bot.errors import UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.metrics import Metrics
from bot.providers.stt_stream import Failed, Reconnected, STTEvent, STTStream

log = logging.getLogger("bot.call")


class LiveInput:
    def __init__(self, *, call_sid: str, metrics: Metrics, tasks: CallTasks, on_event: Callable[[STTEvent], None]) -> None:
        self.call_sid, self.metrics, self.tasks, self._on_event = call_sid, metrics, tasks, on_event
        self._stream: STTStream | None = None

    @property
    def attached(self) -> bool:
        return self._stream is not None

    def attach(self, stream: STTStream) -> None:
        """From now on frames go to ``stream`` and its events to ``on_event``."""
        self._stream = stream
        self.tasks.spawn(self._consume(stream))  # it guards itself: a failure falls back to batch STT

    def send(self, frame: bytes, *, voiced: bool) -> None:
        if self._stream is not None:
            self._stream.send(frame, voiced=voiced)

    def finalize(self) -> None:
        """Ask the stream for its final now (the local VAD heard the end of the turn first)."""
        if self._stream is not None:
            self.tasks.helper(self._stream.finalize(), "stt-finalize")

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()

    async def _consume(self, stream: STTStream) -> None:
        try:
            async for ev in stream.events():
                if isinstance(ev, Reconnected):
                    log.info("live stt reconnected", extra=kv(call_sid=self.call_sid, attempts=ev.attempts, replayed_ms=ev.replayed_ms))
                elif isinstance(ev, Failed):
                    self._failed(ev.error)
                self._on_event(ev)
                if isinstance(ev, Failed):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the live path must not end the call
            log.exception("live stt consumer failed", extra=kv(call_sid=self.call_sid))
            err = StageError("stt", UPSTREAM_ERROR, "live transcription failed", provider=getattr(stream, "provider", "live"))
            self._failed(err)
            self._on_event(Failed(err))

    def _failed(self, err: StageError) -> None:
        self.metrics.stage_errors.labels(err.stage, err.code).inc()
        log.warning("live stt failed, batch STT from now on", extra=kv(call_sid=self.call_sid, code=err.code, provider=err.provider))
        stream, self._stream = self._stream, None
        if stream is not None:
            self.tasks.helper(stream.aclose(), "stt-close")
