"""One call from start to end, whatever the carrier: ``run_call(transport, engine)``.

It owns the call's task group (the paced writer, the session's turn tasks, the live
STT attachment), its registry entry (for capacity and drain), the call metrics and
the drain: nothing outlives the call. A transport only moves messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.call import CallSession
from bot.call_registry import CallRegistry
from bot.control import CallControl
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.playout import Playout
from bot.prompts import PromptBank
from bot.providers.stt_stream import StreamingSTT
from bot.redact import mask_number
from bot.settings import Settings
from bot.store.api import Store
from bot.store.calls import ended_by, outcome_of
from bot.store.saver import MessageSaver
from bot.transport import AudioIn, DtmfIn, MarkIn, StopIn, Transport

log = logging.getLogger("bot.call")

Observer = Callable[[str, dict], None]
# the call record: (transport) at the start; (transport, session or None, failed) at the end
RecordStart = Callable[["Transport"], Awaitable[None]]
RecordEnd = Callable[["Transport", "CallSession | None", bool], Awaitable[None]]


@dataclass(frozen=True)
class CallEngine:
    """What every call needs from the app, built once per call from its state."""

    settings: Settings
    orchestrator: Orchestrator
    prompts: PromptBank
    control: CallControl
    metrics: Metrics
    calls: CallRegistry
    store: Store
    saver: MessageSaver | None = None  # the app's: message saves outlive the call
    live_stt: StreamingSTT | None = None
    record_start: RecordStart | None = None
    record_end: RecordEnd | None = None


async def run_call(
    transport: Transport,
    engine: CallEngine,
    *,
    key: object | None = None,
    control: CallControl | None = None,
    observer: Observer | None = None,
) -> CallSession | None:
    """Run the call until the far end stops or the session ends it. ``key``: the
    call's registry key (never a CallSid the far end chose; a fresh one by default).
    ``control`` overrides the engine's (a browser call has no carrier to hang up);
    ``observer`` gets the session's events (caller text, bot sentences, turn latency, state)."""
    key = object() if key is None else key
    metrics = engine.metrics
    call_sid = transport.call_sid
    fields = dict(call_sid=call_sid, stream_sid=transport.stream_sid, caller=mask_number(transport.caller), transport=transport.kind)
    playout = Playout(transport.send_audio, transport.send_mark, transport.send_clear, frames_per_message=transport.frames_per_message)
    tasks: set[asyncio.Task] = set()
    t0 = time.monotonic()
    metrics.calls.inc()
    metrics.live_calls.inc()
    log.info("call started", extra=kv(**fields))
    if engine.record_start is not None:
        await engine.record_start(transport)
    session: CallSession | None = None
    failed = False
    try:
        async with asyncio.TaskGroup() as tg:

            def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
                task = tg.create_task(coro)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                return task

            session = CallSession(
                call_sid=call_sid, stream_sid=transport.stream_sid, caller=transport.caller, settings=engine.settings,
                orchestrator=engine.orchestrator, prompts=engine.prompts, playout=playout,
                control=control or engine.control, metrics=metrics, spawn=spawn, store=engine.store, saver=engine.saver,
            )
            session.observer = observer
            engine.calls[key] = session
            spawn(playout.run())
            spawn(_close_when_ended(session, transport))
            session.start()
            if engine.live_stt is not None:  # opens while the greeting plays
                spawn(_attach_live(session, engine.live_stt, metrics))
            await _pump(transport, session)
            await session.close()
            for task in list(tasks):
                task.cancel()
    except* (ConnectionResetError, ConnectionError) as eg:
        log.info("socket closed while sending", extra=kv(**fields, error=type(eg.exceptions[0]).__name__))
    except* Exception:
        failed = True
        log.exception("call failed", extra=kv(**fields))
    finally:
        try:
            metrics.live_calls.dec()
            await transport.close()
            seconds = time.monotonic() - t0
            how = ended_by(session, failed=failed)  # the one answer for the log, the metrics and the record
            outcome = outcome_of(session, failed=failed)
            metrics.calls_ended.labels(how, outcome).inc()
            metrics.call_seconds.observe(seconds)
            log.info(
                "call ended",
                extra=kv(
                    **fields, ended_by=how, outcome=outcome, seconds=seconds, turns=session.turn_no if session else 0,
                    limit=session.end_reason if session else None,
                    barge_ins=session.barge_ins if session else 0, fallbacks=session.fallbacks if session else 0,
                    dtmf_dropped=(session.c.dtmf_dropped or None) if session else None,
                    frames_out=playout.frames_sent, **transport.summary(),
                ),
            )
            if engine.record_end is not None:
                await engine.record_end(transport, session, failed)
        finally:  # last, with no await after it: once a call is out of the registry, it is all done
            engine.calls.pop(key, None)
    return session


async def _pump(transport: Transport, session: CallSession) -> None:
    async for ev in transport.inbound():
        if isinstance(ev, AudioIn):
            session.on_audio(ev.frame)
        elif isinstance(ev, MarkIn):
            session.on_mark(ev.name)
        elif isinstance(ev, DtmfIn):
            session.on_dtmf(ev.digit)
        elif isinstance(ev, StopIn):
            if ev.no_media:
                session.media_lost()
            return
        if session.ended.is_set():
            return


async def _attach_live(session: CallSession, live: StreamingSTT, metrics: Metrics) -> None:
    t = await live.open(call_sid=session.call_sid)
    if t.error is not None:
        metrics.stage_errors.labels("stt", t.error.code).inc()
        log.warning("live stt unavailable, batch STT for this call", extra=kv(call_sid=session.call_sid, code=t.error.code))
        await t.aclose()
        return
    session.attach_live(t)


async def _close_when_ended(session: CallSession, transport: Transport) -> None:
    await session.ended.wait()
    await transport.close()
