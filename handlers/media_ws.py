"""GET /twilio/media: the Media Streams websocket, as a transport for ``run_call``.

The handler checks the signature, counts the stream against MAX_CALLS from the
upgrade on (handlers/stream_admission.py), waits for Twilio's ``start``, admits it
only with the one-time token the voice webhook issued for that CallSid, then hands
the call to ``bot.run_call.run_call``. ``TwilioTransport`` only moves messages
between the socket and the sans-I/O protocol object (``bot.media_stream``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, WSMsgType, web

from bot import media_stream as tp
from bot.logs import kv
from bot.run_call import run_call
from bot.transport import AudioIn, DtmfIn, Inbound, MarkIn, StopIn
from handlers.background import spawn
from handlers.call_engine import call_engine
from handlers.metrics import WS_UPGRADED
from handlers.signatures import forbidden, public_base, signature_ok, ws_base
from handlers.state import METRICS
from handlers.stream_admission import ADMISSION, Ticket

log = logging.getLogger("handlers.media")

MAX_MESSAGE = 64 * 1024
START_TIMEOUT_S = 10.0
YIELD_EVERY = 8  # messages read back to back before giving the loop to others


class TwilioTransport:
    """One Media Streams socket after its (admitted) ``start``."""

    kind = "twilio"

    def __init__(
        self, ws: web.WebSocketResponse, proto: tp.MediaStreamProtocol, start: tp.Start, metrics, *, frames_per_message: int = 1
    ) -> None:
        self.ws, self.proto, self.metrics = ws, proto, metrics
        self.frames_per_message = frames_per_message  # MEDIA_FRAMES_PER_MESSAGE: Twilio plays messages of any size in order
        self.call_sid, self.stream_sid = start.call_sid, start.stream_sid
        self.caller = tp.valid_caller(start.custom_parameters.get("caller", ""))
        self._counted = False

    async def inbound(self) -> AsyncIterator[Inbound]:
        n = 0
        async for msg in self.ws:
            n += 1
            if n % YIELD_EVERY == 0:
                # buffered messages are read without yielding: a flood on one stream must
                # not hold the loop (other calls' audio) for its whole burst
                await asyncio.sleep(0)
            if msg.type is not WSMsgType.TEXT:
                self.proto.receive_binary()
                continue
            ev = self.proto.receive(msg.data)
            if isinstance(ev, tp.Media):
                yield AudioIn(ev.payload)
            elif isinstance(ev, tp.Mark):
                yield MarkIn(ev.name)
            elif isinstance(ev, tp.Dtmf):
                yield DtmfIn(ev.digit)
            elif isinstance(ev, tp.Stop):
                yield StopIn()
                return

    async def _send(self, text_of, *args) -> None:
        if self.proto.state is not tp.State.STARTED or self.ws.closed:
            return  # the caller hung up (stop): what is still queued goes nowhere
        await self.ws.send_str(text_of(*args))

    async def send_audio(self, frame: bytes) -> None:
        await self._send(self.proto.send_media, frame)

    async def send_mark(self, name: str) -> None:
        await self._send(self.proto.send_mark, name)

    async def send_clear(self) -> None:
        await self._send(self.proto.send_clear)

    async def close(self) -> None:
        if not self._counted:  # before the far end sees our close
            self._counted = True
            _count_violations(self.proto, self.metrics)
        if not self.ws.closed:
            await self.ws.close()

    def summary(self) -> dict:
        stats = self.proto.stats
        return {"lost_messages": stats.get("gaps"), "bad_messages": {k: v for k, v in stats.items() if k != "gaps"} or None}


async def media(request: web.Request) -> web.StreamResponse:
    app = request.app
    url = ws_base(public_base(request)) + request.path_qs
    if not signature_ok(request, url, {}):
        log.warning("bad twilio signature on websocket", extra=kv(has_signature="X-Twilio-Signature" in request.headers, checked_url=url))
        raise forbidden()
    ticket = app[ADMISSION].open_stream()  # no call slot until start is admitted (the instance's)
    try:
        return await _serve(request, ticket)
    finally:
        app[ADMISSION].close_stream(ticket)


async def _serve(request: web.Request, ticket: Ticket) -> web.WebSocketResponse:
    app = request.app
    # aiohttp drops the socket past max_msg_size; the protocol object refuses (and
    # counts) anything over MAX_MESSAGE without ending the call. No ping heartbeat:
    # Twilio sends media 50 times a second, START_TIMEOUT_S bounds the wait for the
    # start and MEDIA_TIMEOUT_S ends a stream whose media stops; a heartbeat would add
    # a timer reset to every inbound message for nothing.
    ws = web.WebSocketResponse(max_msg_size=16 * MAX_MESSAGE)
    await ws.prepare(request)

    def evict() -> None:  # too many sockets wait for start and this one waited longest
        app[METRICS].calls_rejected.labels("unstarted").inc()
        log.warning("media stream closed", extra=kv(reason="unstarted"))
        spawn(app, ws.close(code=WSCloseCode.TRY_AGAIN_LATER), name="evict-unstarted")

    ticket.evict = evict
    request[WS_UPGRADED] = True  # for the request metrics if the client goes first
    proto = tp.MediaStreamProtocol(max_message_bytes=MAX_MESSAGE)
    metrics = app[METRICS]
    start = await _wait_for_start(ws, proto)
    if start is None:
        _count_violations(proto, metrics)
        await ws.close()
        return ws
    ticket.evict = None
    refused = await app[ADMISSION].admit(ticket, start.call_sid, start.custom_parameters)
    if refused is not None:  # before any provider, database or REST work
        metrics.calls_rejected.labels(refused).inc()
        log.warning("media stream refused", extra=kv(reason=refused, call_sid=start.call_sid, stream_sid=start.stream_sid))
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"stream not admitted")
        return ws
    # keyed per stream: a CallSid comes from the client
    engine = call_engine(app)
    transport = TwilioTransport(ws, proto, start, metrics, frames_per_message=engine.settings.media_frames_per_message)
    await run_call(transport, engine, key=ticket.id)
    return ws


async def _wait_for_start(ws: web.WebSocketResponse, proto: tp.MediaStreamProtocol) -> tp.Start | None:
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


def _count_violations(proto: tp.MediaStreamProtocol, metrics) -> None:
    for reason, n in proto.stats.items():
        if n and reason != "gaps":
            metrics.protocol_errors.labels(reason).inc(n)
