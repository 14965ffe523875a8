"""GET /twilio/media: the Media Streams websocket.

The handler only moves messages between the socket and the engine: one reader
(this coroutine), the paced writer, and the session's turn tasks, all in one
task group so nothing outlives the call.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSCloseCode, WSMsgType, web

from bot import media_stream as tp
from bot.call import CallSession
from bot.logs import kv
from bot.playout import Playout
from bot.redact import mask_number
from handlers.state import CALLS, CONTROL, DRAINING, LIVE_STT, METRICS, ORCHESTRATOR, PROMPTS, SETTINGS
from handlers.storage import STORE, record_end, record_start
from handlers.stream_admission import ADMISSION, Ticket
from handlers.twilio import public_base, signature_ok, ws_base

log = logging.getLogger("handlers.media")

MAX_MESSAGE = 64 * 1024
START_TIMEOUT_S = 10.0
YIELD_EVERY = 8  # messages read back to back before giving the loop to others


async def media(request: web.Request) -> web.StreamResponse:
    app = request.app
    url = ws_base(public_base(request)) + request.path_qs
    if not signature_ok(request, url, {}):
        log.warning("bad twilio signature on websocket", extra=kv(has_signature="X-Twilio-Signature" in request.headers))
        raise web.HTTPForbidden(text='{"error":{"code":"forbidden","message":"bad or missing Twilio signature"}}', content_type="application/json")
    ticket = app[ADMISSION].open_stream()  # MAX_CALLS counts streams from here on
    if ticket is None:
        app[METRICS].calls_rejected.labels("capacity").inc()
        log.warning("media stream refused", extra=kv(reason="capacity"))
        raise web.HTTPServiceUnavailable(text='{"error":{"code":"busy","message":"at capacity"}}', content_type="application/json")
    try:
        return await _serve(request, ticket)
    finally:
        app[ADMISSION].close_stream(ticket)


async def _serve(request: web.Request, ticket: Ticket) -> web.WebSocketResponse:
    app = request.app
    # aiohttp drops the socket past max_msg_size; the protocol object refuses (and
    # counts) anything over MAX_MESSAGE without ending the call.
    ws = web.WebSocketResponse(max_msg_size=16 * MAX_MESSAGE, heartbeat=30)
    await ws.prepare(request)
    proto = tp.MediaStreamProtocol(max_message_bytes=MAX_MESSAGE)
    metrics = app[METRICS]
    start = await _wait_for_start(ws, proto)
    if start is None:
        _count_violations(proto, metrics)
        await ws.close()
        return ws

    settings = app[SETTINGS]
    call_sid, stream_sid = start.call_sid, start.stream_sid
    refused = app[ADMISSION].admit(ticket, call_sid, start.custom_parameters)
    if refused is not None:  # before any provider, database or REST work
        metrics.calls_rejected.labels(refused).inc()
        log.warning("media stream refused", extra=kv(reason=refused, call_sid=call_sid, stream_sid=stream_sid))
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"stream not admitted")
        return ws
    caller = tp.valid_caller(start.custom_parameters.get("caller", ""))
    fields = dict(call_sid=call_sid, stream_sid=stream_sid, caller=mask_number(caller) or "unknown")

    async def send(make, *args) -> None:
        if proto.state is not tp.State.STARTED or ws.closed:
            return  # the caller hung up (stop): what is still queued goes nowhere
        await ws.send_str(make(*args))

    playout = Playout(
        lambda b: send(proto.send_media, b),
        lambda name: send(proto.send_mark, name),
        lambda: send(proto.send_clear),
    )
    tasks: set[asyncio.Task] = set()
    t0 = time.monotonic()
    metrics.calls.inc()
    metrics.live_calls.inc()
    log.info("call started", extra=kv(**fields))
    await record_start(app, call_sid=call_sid, stream_sid=stream_sid, caller=caller)
    session: CallSession | None = None
    failed = False
    try:
        async with asyncio.TaskGroup() as tg:

            def spawn(coro) -> asyncio.Task:
                task = tg.create_task(coro)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                return task

            session = CallSession(
                call_sid=call_sid, stream_sid=stream_sid, caller=caller, settings=settings,
                orchestrator=app[ORCHESTRATOR], prompts=app[PROMPTS], playout=playout,
                control=app[CONTROL], metrics=metrics, spawn=spawn, store=app[STORE],
            )
            app[CALLS][ticket.id] = session  # keyed per stream: a CallSid comes from the client
            writer = spawn(playout.run())
            ender = spawn(_close_when_ended(session, ws))
            session.start()
            if app[LIVE_STT] is not None:  # opens while the greeting plays
                spawn(_attach_live(session, app[LIVE_STT], metrics))
            await _read_loop(ws, proto, session)
            await session.close()
            for task in list(tasks):
                task.cancel()
            del writer, ender
    except* (ConnectionResetError, ConnectionError) as eg:
        log.info("socket closed while sending", extra=kv(**fields, error=type(eg.exceptions[0]).__name__))
    except* Exception:
        failed = True
        log.exception("call failed", extra=kv(**fields))
    finally:
        app[CALLS].pop(ticket.id, None)
        metrics.live_calls.dec()
        _count_violations(proto, metrics)
        if not ws.closed:
            await ws.close()
        seconds = time.monotonic() - t0
        ended_by = "error" if failed else (session.ended_by if session and session.ended_by else "caller")
        outcome = session.call_outcome(error=failed) if session else "failed"
        metrics.calls_ended.labels(ended_by, outcome).inc()
        metrics.call_seconds.observe(seconds)
        log.info(
            "call ended",
            extra=kv(
                **fields, ended_by=ended_by, outcome=outcome, seconds=seconds, turns=session._turn_no if session else 0,
                limit=session.end_reason if session else None,
                barge_ins=session.barge_ins if session else 0, fallbacks=session.fallbacks if session else 0,
                frames_out=playout.frames_sent, lost_messages=proto.stats.get("gaps"),
                bad_messages={k: v for k, v in proto.stats.items() if k != "gaps"} or None,
            ),
        )
        await record_end(app, session, call_sid=call_sid, failed=failed, draining=app[DRAINING].get("on", False))
    return ws


async def _wait_for_start(ws: web.WebSocketResponse, proto) -> "tp.Start | None":
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            n = 0
            async for msg in ws:
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if msg.type is not WSMsgType.TEXT:
                    proto.receive_binary()
                    continue
                ev = proto.receive(msg.data)
                if isinstance(ev, tp.Start):
                    return ev
                if isinstance(ev, tp.Stop):
                    return None
    except TimeoutError:
        log.warning("no start event on media stream", extra=kv(timeout_s=START_TIMEOUT_S))
    return None


async def _read_loop(ws: web.WebSocketResponse, proto, session: CallSession) -> None:
    n = 0
    async for msg in ws:
        n += 1
        if n % YIELD_EVERY == 0:
            # buffered messages are read without yielding: a flood on one stream must
            # not hold the loop (other calls' audio) for its whole burst
            await asyncio.sleep(0)
        if msg.type is not WSMsgType.TEXT:
            proto.receive_binary()
            continue
        ev = proto.receive(msg.data)
        if ev is None:
            continue
        if isinstance(ev, tp.Media):
            session.on_audio(ev.payload)
        elif isinstance(ev, tp.Mark):
            session.on_mark(ev.name)
        elif isinstance(ev, tp.Dtmf):
            session.on_dtmf(ev.digit)
        elif isinstance(ev, tp.Stop):
            return
        if session.ended.is_set():
            return


async def _attach_live(session: CallSession, live, metrics) -> None:
    t = await live.open(call_sid=session.call_sid)
    if t.error is not None:
        metrics.stage_errors.labels("stt", t.error.code).inc()
        log.warning("live stt unavailable, batch STT for this call", extra=kv(call_sid=session.call_sid, code=t.error.code))
        await t.aclose()
        return
    session.attach_live(t)


async def _close_when_ended(session: CallSession, ws: web.WebSocketResponse) -> None:
    await session.ended.wait()
    await ws.close()


def _count_violations(proto, metrics) -> None:
    for reason, n in proto.stats.items():
        if n and reason != "gaps":
            metrics.protocol_errors.labels(reason).inc(n)
