"""One inbound call's SIP dialog (the UAS side of RFC 3261 sections 12-15).

``SipCall.run``: open the RTP port, answer the SDP offer (488 when no PCMU/PCMA), ring,
send 200 OK (retransmitted until the ACK), run the engine on the call, and hang up by BYE
unless the caller did. In the dialog: ACK, BYE, re-INVITE (hold/unhold, a codec change:
``RtpMedia.configure``), INFO DTMF, and the NOTIFYs of a transfer by REFER (RFC 3515).
In-dialog requests go to the address the INVITE came from (symmetric signalling, as a
trunk behind NAT or a dispatcher in front of us expects).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sipmessage import Request, Response

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.message import Peer
from bot.carriers.sip.transactions import T1, T2, TIMER_B
from bot.logs import kv
from bot.redact import mask_number
from bot.transport import DtmfIn, Inbound, StopIn

if TYPE_CHECKING:
    from bot.carriers.sip.media_session import RtpMedia
    from bot.carriers.sip.uas import SipServer

log = logging.getLogger("bot.sip")

RING_S = 0.2  # 180 Ringing before the answer: a CANCEL sent on the first ring still wins
NOTIFY_WAIT_S = 45.0  # a transfer target's ringing, as the far end reports it
NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
MIN_SE = 90  # RFC 4028: the shortest session interval accepted (422 below it)


def session_interval(req: Request) -> int | None:
    """The Session-Expires delta-seconds of a request (RFC 4028), or None (absent, unreadable)."""
    raw = req.headers.get("Session-Expires") or ""
    m = re.match(r"\s*(\d{1,7})\s*(?:;|$)", raw)
    return int(m.group(1)) if m else None


def supports_timer(req: Request) -> bool:
    tags = ",".join(req.headers.getlist("Supported") + req.headers.getlist("Require")).lower()
    return "timer" in [t.strip() for t in tags.split(",")]


def caller_id(req: Request) -> str:
    """The caller's number from P-Asserted-Identity, else From: "+14155550100", or a
    ``sip:user@host`` of safe characters, or "anonymous"."""
    for raw in (req.headers.get("P-Asserted-Identity"), req.headers.get("From")):
        if not raw:
            continue
        try:
            uri = sipmsg.Message.parse(b"X sip:x SIP/2.0\r\nFrom: " + raw.encode()[:512] + b"\r\n\r\n").from_address.uri
        except Exception:  # noqa: BLE001 - an unparsable identity is no identity
            continue
        user = re.sub(r"[\s().-]", "", uri.user or "")
        if NUMBER.fullmatch(user):
            return user
        if user.lower() in ("anonymous", "restricted", "unknown", "unavailable", "private"):
            return "anonymous"
        if user and re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", user) and re.fullmatch(r"[A-Za-z0-9.-]{1,253}", uri.host or ""):
            return f"sip:{user}@{uri.host}"
    return "anonymous"


class SipCall:
    def __init__(self, server: SipServer, invite: Request, peer: Peer) -> None:
        self.server, self.invite, self.peer = server, invite, peer
        self.call_id = invite.call_id
        self.remote_tag = sipmsg.tag_of(invite.headers["From"])
        self.local_tag = sipmsg.tag()
        self.caller = caller_id(invite)
        self.call_sid = sipmsg.call_sid(self.call_id, self.remote_tag)
        self.local_cseq = secrets.randbelow(10000) + 1
        self.media: RtpMedia | None = None
        self.local_sdp = b""
        self.sdp_id, self.sdp_version = secrets.randbelow(2**31) + 1, 1
        self.answered = False
        self.cancelled = False
        self.remote_bye = False
        self.bye_sent = False
        self.inbound: deque[Inbound] = deque()  # INFO DTMF, BYE -> the transport, between media events
        self._ack: asyncio.Event = asyncio.Event()
        self._ack_cseq = invite.cseq.sequence
        self._ack_body = b""
        self._reinvite_busy = False
        self._notify: asyncio.Queue[int] = asyncio.Queue()  # sipfrag status codes from NOTIFY
        self.fields = dict(call_sid=self.call_sid, caller=mask_number(self.caller), peer=peer.host)
        se = session_interval(invite)
        self.session_expires = max(MIN_SE, se) if se is not None and supports_timer(invite) else None  # the caller refreshes
        self._refreshed = 0.0

    # --- the call's life ----------------------------------------------------------------------
    async def run(self, start: Callable[[SipCall], Awaitable[None]]) -> None:
        try:
            if not await self._answer():
                return
            await start(self)
        finally:
            await self._end()

    async def _answer(self) -> bool:
        """Early offer (SDP in the INVITE): answer it in the 200. Late offer (an INVITE without
        SDP, as some PBXs send): our offer goes in the 200 and the answer comes in the ACK."""
        from bot.carriers.sip.sdp import SdpError, accept_answer, answer_offer, make_offer, parse_sdp

        srv = self.server
        late = not self.invite.body
        try:
            offer = None if late else parse_sdp(self.invite.body.decode("utf-8", "replace"))
        except SdpError:
            self._final(488)
            return False
        try:
            self.media = await srv.open_media()
        except OSError:
            log.warning("no RTP port free", extra=kv(**self.fields))
            self._final(503)
            return False
        local_ip = srv.public_ip(self.peer)
        codec = "offered"
        if offer is None:
            sdp = make_offer(local_ip=local_ip, local_port=self.media.local_port, session_id=self.sdp_id, session_version=self.sdp_version)
        else:
            try:
                sdp, params = answer_offer(offer, local_ip=local_ip, local_port=self.media.local_port,
                                           session_id=self.sdp_id, session_version=self.sdp_version)
            except SdpError:
                self._final(488)
                return False
            self.media.configure(params, peer_host=self.peer.host)
            codec = params.codec
        self.local_sdp = sdp.encode()
        self.server.endpoint.respond(self.invite, self._response(self.invite, 180))
        await asyncio.sleep(RING_S)
        if self.cancelled:
            return False
        ok = self._response(self.invite, 200, body=self.local_sdp)
        self.server.endpoint.respond(self.invite, ok)
        self.answered = True
        if not await self._retransmit_until_ack(ok):
            log.warning("no ACK for 200 OK, hanging up", extra=kv(**self.fields))
            await self._bye()
            return False
        if late:
            try:
                params = accept_answer(parse_sdp(self._ack_body.decode("utf-8", "replace")))
            except SdpError:
                log.warning("late offer: no usable answer in the ACK, hanging up", extra=kv(**self.fields))
                await self._bye()
                return False
            self.media.configure(params, peer_host=self.peer.host)
            codec = params.codec
        log.info("sip call answered", extra=kv(**self.fields, codec=codec, rtp=self.media.local_port, late_offer=late or None,
                                               session_expires=self.session_expires))
        if self.session_expires:
            self._refreshed = asyncio.get_running_loop().time()
            self.server.spawn(self._session_watch(self.session_expires))
        return True

    async def _session_watch(self, interval: int) -> None:
        """RFC 4028 10: the caller refreshes; with no refresh the bot ends the call a third of
        the interval (at most 32 s) before it expires."""
        loop = asyncio.get_running_loop()
        margin = min(32.0, interval / 3)
        while not (self.remote_bye or self.bye_sent or self.cancelled):
            due = self._refreshed + interval - margin
            if loop.time() >= due:
                log.info("sip session expired: no refresh", extra=kv(**self.fields, interval=interval))
                self.stop()
                return
            await asyncio.sleep(min(5.0, due - loop.time() + 0.01))

    async def _retransmit_until_ack(self, data: bytes) -> bool:
        """RFC 3261 13.3.1.4: the UAS's 2xx is resent (T1 doubling to T2) until the ACK."""
        interval, waited = T1, 0.0
        while waited < TIMER_B:
            try:
                await asyncio.wait_for(self._ack.wait(), interval)
                return True
            except TimeoutError:
                waited += interval
                if self.remote_bye or self.cancelled:
                    return False
                if self.peer.proto == "udp":
                    self.server.endpoint.send(data, self.peer)
                interval = min(2 * interval, T2)
        return False

    def stop(self) -> None:
        """End the call's inbound now (BYE from the far end, the server closing): StopIn
        next, and the media closed so its events end even when none are flowing."""
        self.inbound.append(StopIn())
        if self.media is not None:
            self.server.spawn(self.media.close())

    def cancel(self) -> None:
        """CANCEL before the answer: 487 to the INVITE; the run stops at its next step."""
        self.cancelled = True
        self._final(487)

    async def _end(self) -> None:
        if self.answered and not self.remote_bye and not self.cancelled:
            await self._bye()
        if self.media is not None:
            await self.media.close()
        self.server.forget(self)

    # --- requests from the far end ------------------------------------------------------------
    def on_ack(self, req: Request) -> None:
        if req.cseq.sequence == self._ack_cseq and not self._ack.is_set():
            self._ack.set()
            if not self.answered or self._ack_cseq == self.invite.cseq.sequence:
                self._ack_body = req.body  # the first INVITE's: _answer reads it (a late offer's answer)
            elif req.body and self.media is not None:  # a re-INVITE without SDP: the answer to our offer
                self._configure(req.body)

    def on_request(self, req: Request, peer: Peer) -> None:  # noqa: ARG002 - the endpoint's request handler (replies go by the transaction)
        m = req.method
        if m == "BYE":
            self.remote_bye = True
            self._reply(req, 200)
            self.stop()
            self._notify.put_nowait(200)  # a transfer in progress is over either way
        elif m == "INVITE":
            self._reinvite(req)
        elif m == "INFO":
            self._info(req)
        elif m == "NOTIFY":
            self._reply(req, 200)
            frag = re.match(rb"\s*SIP/2\.0\s+(\d{3})", req.body)
            if frag and (req.headers.get("Event") or "").lower().startswith("refer"):
                self._notify.put_nowait(int(frag.group(1)))
        elif m == "UPDATE":  # a session refresh, or a new offer without a re-INVITE (RFC 3311)
            if not self._take_offer(req):
                return
            self.server.endpoint.respond(req, self._response(req, 200, body=self.local_sdp if req.body else b""))
        elif m == "OPTIONS":
            self._reply(req, 200, headers=[("Allow", sipmsg.ALLOW)])
        else:
            self._reply(req, 405, headers=[("Allow", sipmsg.ALLOW)])

    def _take_offer(self, req: Request) -> bool:
        """A mid-call offer (re-INVITE or UPDATE) applied to the media, and the session timer
        refreshed; False once it is answered 488 (no codec we can take)."""
        if req.body:
            answer = self._configure(req.body)
            if answer is None:
                self._reply(req, 488)
                return False
            self.local_sdp = answer
        self._refresh(req)
        return True

    def _reinvite(self, req: Request) -> None:
        if not self.answered or self._reinvite_busy or not self._ack.is_set():  # an INVITE still open: 491 (RFC 3261 14.2)
            self._reply(req, 491)
            return
        if not self._take_offer(req):
            return
        ok = self._response(req, 200, body=self.local_sdp)
        self.server.endpoint.respond(req, ok)
        self._ack = asyncio.Event()
        self._ack_cseq = req.cseq.sequence
        self._reinvite_busy = True

        async def wait_ack() -> None:
            try:
                await self._retransmit_until_ack(ok)
            finally:
                self._reinvite_busy = False

        self.server.spawn(wait_ack())

    def _refresh(self, req: Request) -> None:
        """A re-INVITE or UPDATE refreshes the session (and may change its interval)."""
        if self.session_expires is not None:
            se = session_interval(req)
            if se is not None:
                self.session_expires = max(MIN_SE, se)
            self._refreshed = asyncio.get_running_loop().time()

    def _configure(self, body: bytes) -> bytes | None:
        from bot.carriers.sip.sdp import SdpError, answer_offer, parse_sdp

        assert self.media is not None
        try:
            sdp, params = answer_offer(parse_sdp(body.decode("utf-8", "replace")), local_ip=self.server.public_ip(self.peer),
                                       local_port=self.media.local_port, session_id=self.sdp_id, session_version=self.sdp_version + 1)
        except SdpError:
            return None
        self.sdp_version += 1
        self.media.configure(params, peer_host=self.peer.host)
        log.info("sip media updated", extra=kv(**self.fields, codec=params.codec, direction=params.direction))
        return sdp.encode()

    def _info(self, req: Request) -> None:
        from bot.carriers.sip.dtmf import parse_info

        digit = parse_info(req.headers.get("Content-Type") or "", req.body)
        if digit is None and req.body:
            self._reply(req, 415)
            return
        self._reply(req, 200)
        if digit is not None:
            self.inbound.append(DtmfIn(digit))

    # --- requests of ours ---------------------------------------------------------------------
    async def transfer(self, number: str) -> bool:
        """Blind transfer by REFER; True once the far end reports the target answered (or
        hangs up on us, as some PBXs do instead of a final NOTIFY)."""
        if number.startswith(("sip:", "sips:", "tel:")):  # a business file may name a SIP address
            if not re.fullmatch(r"(sips?|tel):[A-Za-z0-9_.!~*'()&=+$,;?/%:@\[\]-]{1,200}", number):
                log.warning("transfer: not a usable SIP address", extra=kv(**self.fields))
                return False
            target = number
        else:
            digits = re.sub(r"[^0-9+*#]", "", number)
            if not digits:
                return False
            target = f"sip:{digits}@{self.peer.host}"
        local = self._local_uri()
        resp = await self._request("REFER", [("Refer-To", f"<{target}>"), ("Referred-By", f"<{local}>")])
        if resp is None or resp.code >= 300:
            log.warning("transfer refused", extra=kv(**self.fields, code=resp.code if resp else "timeout"))
            return False
        while True:
            try:
                code = await asyncio.wait_for(self._notify.get(), NOTIFY_WAIT_S)
            except TimeoutError:
                log.warning("transfer: no final NOTIFY", extra=kv(**self.fields))
                return False
            if code >= 200:
                ok = code < 300
                log.info("transfer " + ("done" if ok else "failed"), extra=kv(**self.fields, code=code))
                return ok

    async def _bye(self) -> None:
        if self.bye_sent or self.remote_bye:
            return
        self.bye_sent = True
        resp = await self._request("BYE", [])
        log.info("sip bye sent", extra=kv(**self.fields, code=resp.code if resp else "timeout"))

    async def _request(self, method: str, extra: list[tuple[str, str]]) -> Response | None:
        self.local_cseq += 1
        inv = self.invite
        ip, port = self.server.via_addr(self.peer)
        headers = [
            ("Via", f"SIP/2.0/{self.peer.proto.upper()} {ip}:{port};branch={sipmsg.branch()};rport"),
            *[("Route", r) for r in inv.headers.getlist("Record-Route")],  # the UAS's route set: in order (RFC 3261 12.1.1)
            ("From", _with_tag(inv.headers["To"], self.local_tag)),
            ("To", inv.headers["From"]),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.local_cseq} {method}"),
            ("Contact", f"<{self._local_uri()}>"),
            *extra,
        ]
        data = sipmsg.request(method, self._remote_target(), headers)
        try:
            return await self.server.endpoint.client.send_request(data, sipmsg.txn_key(sipmsg.parse(data)), self.peer)
        except TimeoutError:
            return None

    # --- helpers --------------------------------------------------------------------------------
    def _remote_target(self) -> str:
        try:
            contact = self.invite.contact
            if contact:
                return str(contact[0].uri)
        except Exception:  # noqa: BLE001 - a bad Contact: fall back to From
            pass
        return str(self.invite.from_address.uri)

    def _local_uri(self) -> str:
        ip, port = self.server.contact_addr(self.peer)
        t = ";transport=tcp" if self.peer.proto == "tcp" else ""
        return f"sip:phonebot@{ip}:{port}{t}"

    def _response(self, req: Request, code: int, *, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
        hdrs = list(headers or [])
        if req.method in ("INVITE", "UPDATE") and 200 <= code < 300 and self.session_expires:
            hdrs += [("Session-Expires", f"{self.session_expires};refresher=uac"), ("Require", "timer")]
        if req.method == "INVITE" and code < 300:
            hdrs += [("Contact", f"<{self._local_uri()}>"), ("Allow", sipmsg.ALLOW), ("Supported", "replaces, timer")]
            hdrs += [("Record-Route", rr) for rr in req.headers.getlist("Record-Route")]
        return sipmsg.response(req, code, peer=self.peer, to_tag=self.local_tag, headers=hdrs, body=body)

    def _reply(self, req: Request, code: int, headers: list[tuple[str, str]] | None = None) -> None:
        self.server.endpoint.respond(req, self._response(req, code, headers=headers))

    def _final(self, code: int) -> None:
        self.server.endpoint.respond(self.invite, self._response(self.invite, code))


def _with_tag(value: str, tag: str) -> str:
    return value if sipmsg.tag_of(value) else f"{value};tag={tag}"
