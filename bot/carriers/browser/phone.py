"""The browser softphone: GET /phone (the page) and /phone/ws (its call), a transport
for the engine like Twilio's, so a browser talks to the same engine.

Wire: binary messages are 8 kHz mono 16-bit little-endian PCM both ways (the page
runs its AudioContext at 8 kHz, so the browser resamples); text messages are JSON:
page -> server ``{"type": "mark"|"dtmf"|"hangup", ...}``; server -> page ``mark``
(echo it once played), ``clear`` (stop playing), ``state``, ``transcript``,
``latency`` and ``end``. Opened once as ``/phone?key=API_KEY``: the key becomes an
HttpOnly cookie and leaves the address bar; the websocket upgrade needs that cookie.

Audio is held to what a microphone can send: one message carries at most
``MAX_AUDIO_MS`` (the page's worklet sends 20 ms), and audio may run ahead of the wall
clock by at most ``BURST_S`` (a token bucket of audio seconds). Anything else is not a
browser: the socket is closed (1008/1009), counted in ``phonebot_protocol_errors``
and logged without the payload; the call ends as if hung up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from bot.assets import WEB
from bot.carriers.base import serve_call
from bot.control import LocalControl
from bot.logs import kv
from bot.metrics import Metrics
from bot.profile import prompt_texts
from bot.transport import AudioIn, DtmfIn, Inbound, MarkIn, StopIn
from handlers.metrics import WS_UPGRADED
from handlers.session_auth import issue_session, key_ok, session_valid
from handlers.state import DRAINING, INSTANCE, METRICS, SETTINGS
from media import mulaw

log = logging.getLogger("bot.carriers.browser")

FRAME = 160  # 20 ms at 8 kHz
MAX_AUDIO_MS = 200  # longest audio message accepted (the page's worklet sends 20 ms)
MAX_AUDIO_BYTES = MAX_AUDIO_MS * 8 * 2
MAX_MESSAGE = 4096  # aiohttp refuses anything larger before buffering it
BURST_S = 2.0  # how far audio may run ahead of the wall clock (jitter, a stalled loop)
PAGE_STATE = {"greeting": "speaking", "closing": "speaking"}  # session state -> page state


def _authorised(request: web.Request) -> bool:
    """The one auth check: the owner's session cookie (handlers/session_auth.py, the
    console's), or trial mode without a key."""
    return (bool(request.app[SETTINGS].api_key) or request.app[SETTINGS].trial) and session_valid(request)


class RealTime:
    """A token bucket of audio seconds, filled by the wall clock up to ``burst``:
    ``take(seconds)`` is False once audio has run more than ``burst`` ahead of real time."""

    def __init__(self, burst: float = BURST_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.credit, self.clock = burst, burst, clock
        self.last: float | None = None

    def take(self, seconds: float) -> bool:
        now = self.clock()
        if self.last is not None:
            self.credit = min(self.burst, self.credit + now - self.last)
        self.last = now
        self.credit -= seconds
        return self.credit >= 0


class BrowserTransport:
    kind = "browser"
    frames_per_message = 1  # one 20 ms frame per binary message (MEDIA_FRAMES_PER_MESSAGE is for Twilio only)

    def __init__(self, ws: web.WebSocketResponse, metrics: Metrics | None = None) -> None:
        self.ws = ws
        self.metrics = metrics
        self.pace = RealTime()
        self.refused: str | None = None
        self.call_sid = "BR" + uuid.uuid4().hex
        self.stream_sid, self.caller = self.call_sid, "browser"
        self._pcm = bytearray()
        self._sends: set[asyncio.Task] = set()
        self.bad = 0
        self.frames_in = 0

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for msg in self.ws:
            if msg.type is WSMsgType.ERROR:  # e.g. over MAX_MESSAGE: aiohttp closes with 1009
                self._refuse("browser_bad_frame")
                return
            if msg.type is WSMsgType.BINARY:
                if len(msg.data) > MAX_AUDIO_BYTES:
                    await self._refuse_and_close("browser_audio_too_long", WSCloseCode.MESSAGE_TOO_BIG)
                    return
                if not self.pace.take(len(msg.data) / 16000):
                    await self._refuse_and_close("browser_audio_too_fast", WSCloseCode.POLICY_VIOLATION)
                    return
                self._pcm += msg.data[: len(msg.data) // 2 * 2]
                while len(self._pcm) >= 2 * FRAME:
                    self.frames_in += 1
                    yield AudioIn(mulaw.encode(bytes(self._pcm[: 2 * FRAME])))
                    del self._pcm[: 2 * FRAME]
                continue
            try:
                ev = json.loads(msg.data) if msg.type is WSMsgType.TEXT else {}
                kind = ev.get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind == "mark" and isinstance(ev.get("name"), str):
                yield MarkIn(ev["name"])
            elif kind == "dtmf" and ev.get("digit") in tuple("0123456789*#"):
                yield DtmfIn(ev["digit"])
            elif kind == "hangup":
                yield StopIn()
                return
            else:
                self.bad += 1

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        if self.metrics is not None:
            self.metrics.protocol_errors.labels(reason).inc()
        log.warning("browser audio refused, closing", extra=kv(call_sid=self.call_sid, reason=reason))

    async def _refuse_and_close(self, reason: str, code: int) -> None:
        self._refuse(reason)
        await self.ws.close(code=code, message=reason.encode())

    async def send_audio(self, frame: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(mulaw.decode(frame))

    async def send_mark(self, name: str) -> None:
        await self._json({"type": "mark", "name": name})

    async def send_clear(self) -> None:
        await self._json({"type": "clear"})

    async def _json(self, obj: dict) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(obj))

    def post(self, obj: dict) -> None:
        """Send without waiting (from the session's synchronous observer)."""
        task = asyncio.get_running_loop().create_task(self._json(obj))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def close(self) -> None:
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=1.0)
        if not self.ws.closed:
            await self._json({"type": "end"})
            await self.ws.close()

    def summary(self) -> dict:
        return {"frames_in": self.frames_in, "bad_messages": self.bad or None, "refused": self.refused}


def _observer(transport: BrowserTransport, texts: dict[str, str]):
    def observe(kind: str, data: dict) -> None:
        if kind == "state":
            transport.post({"type": "state", "state": PAGE_STATE.get(data["state"], data["state"])})
        elif kind in ("caller", "bot"):
            transport.post({"type": "transcript", "role": kind, "turn": data["turn"], "text": data["text"]})
        elif kind == "prompt" and data["name"] in texts:
            transport.post({"type": "transcript", "role": "bot", "turn": None, "text": texts[data["name"]]})
        elif kind == "latency":
            transport.post({"type": "latency", "turn": data["turn"], "ms": data["ms"]})

    return observe


async def page(request: web.Request) -> web.StreamResponse:
    key = request.query.get("key")
    settings = request.app[SETTINGS]
    if key is not None:  # swap the key for a cookie, drop it from the address bar
        if not key_ok(request, key):
            return web.Response(status=403, text="Wrong key.")
        query = {k: v for k, v in request.query.items() if k != "key"}
        resp = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(query))})
        issue_session(request, resp)
        return resp
    if not _authorised(request):
        hint = "Open /phone?key=YOUR_API_KEY once." if settings.api_key else "Set API_KEY (or TRIAL=true on this machine) to use the softphone."
        return web.Response(status=401, text=hint)
    return web.FileResponse(WEB / "phone.html", headers={"Cache-Control": "no-store"})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ("phone.js", "phone-worklet.js"):
        raise web.HTTPNotFound()
    return web.FileResponse(WEB / name, headers={"Content-Type": "text/javascript"})


async def socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    if not _authorised(request):  # a foreign Origin was refused before (handlers/web_security.py)
        raise web.HTTPForbidden(text="Not authorised.")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30)
    await ws.prepare(request)
    request[WS_UPGRADED] = True  # for the request metrics if the client goes first
    transport = BrowserTransport(ws, app[METRICS])
    # a browser call takes one of the instance's MAX_CALLS slots, as a phone call does
    admitted = not app[DRAINING].on and app[INSTANCE].take(transport.call_sid, transport.call_sid, app[SETTINGS].max_calls)
    if not admitted:
        app[METRICS].calls_rejected.labels("draining" if app[DRAINING].on else "capacity").inc()
        await ws.send_str(json.dumps({"type": "end", "reason": "busy"}))
        await ws.close()
        return ws
    try:
        log.info("browser call", extra=kv(call_sid=transport.call_sid))
        observer = _observer(transport, prompt_texts(app[SETTINGS]))
        await serve_call(app, transport, LocalControl(), observer=observer)
    finally:
        app[INSTANCE].release(transport.call_sid)
    return ws
