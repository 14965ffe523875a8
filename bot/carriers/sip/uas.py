"""The SIP user agent server: routes each request to a new call, a dialog, or an answer.

New INVITEs pass the digest check (when credentials are set) and admission (starting,
draining, capacity: 503); OPTIONS out of a dialog is the health probe (200, or 503 while
draining so a dispatcher takes this instance out of its set); CANCEL ends an unanswered
INVITE with 487; what this endpoint does not do gets 405/420/481/501.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sipmessage import Request

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.dialog import MIN_SE, SipCall, session_interval
from bot.carriers.sip.endpoint import Endpoint
from bot.carriers.sip.guard import Allow, Digest, RateLimit
from bot.carriers.sip.message import Peer
from bot.logs import kv

if TYPE_CHECKING:
    from bot.carriers.sip.media_session import RtpMedia
    from bot.carriers.sip.register import Registration
    from bot.settings import Settings

log = logging.getLogger("bot.sip")

TRUSTED_RATE_X = 20  # sources in SIP_ALLOW (a trunk, a PBX, a dispatcher) may send this many times SIP_RATE_PER_S
SUPPORTED = {"replaces", "norefersub", "timer"}  # option tags a peer may Require of us
Admit = Callable[[], "str | None"]  # a refusal reason ("starting", "draining", "capacity") or None


class SipServer:
    def __init__(
        self,
        settings: Settings,
        *,
        start_call: Callable[[SipCall], Awaitable[None]],
        admit: Admit = lambda: None,
        draining: Callable[[], bool] = lambda: False,
        open_media: Callable[[], Awaitable[RtpMedia]] | None = None,
        on_refuse: Callable[[str], None] = lambda _reason: None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        rate = settings.sip_rate_per_s
        self.endpoint = Endpoint(allow=Allow(settings.sip_allow), rate=RateLimit(rate, 5 * rate),
                                 trusted_rate=RateLimit(TRUSTED_RATE_X * rate, 5 * TRUSTED_RATE_X * rate), on_request=self.on_request,
                                 on_drop=on_drop)
        self.digest = Digest(settings.sip_username, settings.sip_password) if settings.sip_username else None
        self.start_call, self.admit, self.draining = start_call, admit, draining
        self._open_media = open_media
        self.on_refuse = on_refuse  # the app's phonebot_calls_rejected{reason}
        self.calls: dict[tuple[str, str], SipCall] = {}  # (Call-ID, our tag) -> call
        self.by_invite: dict[tuple[str, str], SipCall] = {}  # (Call-ID, their tag) -> call (CANCEL, retransmits)
        self.tasks: set[asyncio.Task] = set()
        self.refused: dict[str, int] = {}
        self.registration: Registration | None = None
        self._reg_task: asyncio.Task | None = None

    async def start(self) -> None:
        s = self.settings
        await self.endpoint.listen(s.sip_listen, reuse_port=s.workers > 1)
        if s.sip_registrar and s.worker_index == 0:  # one registration per instance
            from bot.carriers.sip.register import Registration

            self.registration = Registration(self.endpoint, registrar=s.sip_registrar, username=s.sip_username,
                                             password=s.sip_password, public_ip=s.sip_public_ip)
            self._reg_task = self.spawn(self.registration.run())

    async def close(self) -> None:
        if self._reg_task is not None:  # it never ends by itself
            self._reg_task.cancel()
        for call in list(self.calls.values()):
            call.stop()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for t in list(self.tasks):
            t.cancel()
        await self.endpoint.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def open_media(self) -> RtpMedia:
        if self._open_media is not None:
            return await self._open_media()
        from bot.carriers.sip.media_session import RtpMedia

        lo, hi = self.settings.rtp_ports
        host = self.settings.sip_listen[0][1] if self.settings.sip_listen else "0.0.0.0"
        return await RtpMedia.open(host=host, port_min=lo, port_max=hi, timeout_s=self.settings.media_timeout_s)

    # --- addresses ------------------------------------------------------------------------------
    def via_addr(self, peer: Peer) -> tuple[str, int]:
        host, port = self.endpoint.local_addr(peer.proto)
        if host in ("0.0.0.0", "::"):
            host = self.endpoint.local_ip_for(peer.host)
        return host, port

    def contact_addr(self, peer: Peer) -> tuple[str, int]:
        host, port = self.via_addr(peer)
        return (self.settings.sip_public_ip or host), port

    def public_ip(self, peer: Peer) -> str:
        return self.contact_addr(peer)[0]

    # --- routing --------------------------------------------------------------------------------
    def on_request(self, req: Request, peer: Peer) -> None:
        m = req.method
        call_id = req.call_id
        to_tag = sipmsg.tag_of(req.headers["To"])
        if m == "ACK":
            call = self.calls.get((call_id, to_tag))
            if call is not None:
                call.on_ack(req)
            return
        if m == "CANCEL":
            self._cancel(req, peer)
            return
        if to_tag:
            call = self.calls.get((call_id, to_tag))
            if call is None:
                self._reply(req, peer, 481)
            else:
                call.on_request(req, peer)
            return
        if m == "OPTIONS":
            code = 503 if self.draining() else 200
            self._reply(req, peer, code, [("Allow", sipmsg.ALLOW), ("Accept", "application/sdp"), ("Supported", "replaces")])
        elif m == "INVITE":
            self._invite(req, peer)
        elif m in ("BYE", "INFO", "NOTIFY", "UPDATE", "PRACK"):
            self._reply(req, peer, 481)
        elif m in ("REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "REFER"):
            self._reply(req, peer, 405, [("Allow", sipmsg.ALLOW)])
        else:
            self._reply(req, peer, 501, [("Allow", sipmsg.ALLOW)])

    def _invite(self, req: Request, peer: Peer) -> None:
        try:
            required = req.require
        except ValueError:
            self._reply(req, peer, 400)
            return
        unsupported = [t for t in required if t not in SUPPORTED]
        if unsupported:
            self._reply(req, peer, 420, [("Unsupported", ", ".join(unsupported))])
            return
        se = session_interval(req)
        if se is not None and se < MIN_SE:  # RFC 4028: too short a session interval
            self._reply(req, peer, 422, [("Min-SE", str(MIN_SE))])
            return
        if self.digest is not None:
            verdict = self.digest.check(req)
            if verdict != "ok":
                self._refuse(f"auth_{verdict}", peer)
                self._reply(req, peer, 401, [("WWW-Authenticate", self.digest.challenge(stale=verdict == "stale"))])
                return
        reason = self.admit()
        if reason is None and len(self.calls) >= self.settings.max_calls:  # ringing ones too: an INVITE flood from a trusted peer
            reason = "capacity"
        if reason is not None:
            self._refuse(reason, peer)
            self._reply(req, peer, 503, [("Retry-After", "5")])
            return
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if req.body and ctype != "application/sdp":  # no body: a late offer (ours goes in the 200 OK)
            self._reply(req, peer, 415, [("Accept", "application/sdp")])
            return
        self._reply(req, peer, 100)
        call = SipCall(self, req, peer)
        self.calls[(call.call_id, call.local_tag)] = call
        self.by_invite[(call.call_id, call.remote_tag)] = call
        log.info("sip invite", extra=kv(**call.fields, transport=peer.proto))
        self.spawn(call.run(self.start_call))

    def _cancel(self, req: Request, peer: Peer) -> None:
        call = self.by_invite.get((req.call_id, sipmsg.tag_of(req.headers["From"])))
        if call is None or not self.endpoint.server.exists(req, "INVITE"):
            self._reply(req, peer, 481)
            return
        self._reply(req, peer, 200)
        if not self.endpoint.server.is_final(req, "INVITE"):
            log.info("sip invite cancelled", extra=kv(**call.fields))
            call.cancel()

    def call_by_sid(self, call_sid: str) -> SipCall | None:
        return next((c for c in self.calls.values() if c.call_sid == call_sid), None)

    def forget(self, call: SipCall) -> None:
        self.calls.pop((call.call_id, call.local_tag), None)
        self.by_invite.pop((call.call_id, call.remote_tag), None)

    def _refuse(self, reason: str, peer: Peer) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.on_refuse(f"sip_{reason}")
        log.info("sip call refused", extra=kv(reason=reason, peer=peer.host))

    def _reply(self, req: Request, peer: Peer, code: int, headers: list[tuple[str, str]] | None = None) -> None:
        self.endpoint.respond(req, sipmsg.response(req, code, peer=peer, to_tag=sipmsg.tag() if code > 100 else None, headers=headers or []))

