"""One SIP call's media: an RTP socket on an even port (RTCP on the next), a paced sender,
the jitter buffer, DTMF, RTCP and the media timeout, behind the carrier's small interface.

The sender is paced by the shared media clock (bot/carriers/sip/media_clock.py): each tick
sends one packet, the next queued frame or a silence frame when nothing is queued, and reads
the call's RTP socket.

Each tick also takes one frame out of the jitter buffer for the engine (``AudioIn``), so
inbound frames arrive at 50 a second whatever the network does. While the far end holds the
call (we are ``recvonly`` or ``inactive``) no audio is sent and none is given to the engine
(music on hold is not the caller speaking); queued frames drain at the same pace and marks
are still echoed, so the engine never waits on a held line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from bot.carriers.sip import rtcp
from bot.carriers.sip.dtmf import DtmfDecoder, encode_event
from bot.carriers.sip.jitter import FRAME, JitterBuffer
from bot.carriers.sip.media_clock import POLL_MAX, media_clock
from bot.carriers.sip.rtp import CN, RtpReceiver, RtpSender, plain
from bot.carriers.sip.sdp import MediaParams
from bot.transport import AudioIn, DtmfIn, MarkIn
from media import alaw

log = logging.getLogger("bot.carriers.sip")

RTCP_TICKS = 250  # a report every 5 s
MAX_EVENTS = 1500  # 30 s of audio waiting for a reader: newer audio is dropped (marks and DTMF are kept)
ULAW_SILENCE = b"\xff" * FRAME
RECV_SIZE = 2048
Event = AudioIn | DtmfIn | MarkIn


def _ignore(data: bytes, addr: tuple[str, int]) -> None:
    pass


class _Socket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.on_datagram: Callable[[bytes, tuple[str, int]], None] = _ignore

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable while the far end sets up or after it left: the timeout decides


def _bind(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class RtpMedia:
    """The media plane of one SIP call (see the module docstring)."""

    def __init__(
        self,
        rtp_sock: socket.socket,
        rtcp_transport: asyncio.DatagramTransport,
        local_port: int,
        *,
        timeout_s: float,
        hold_timeout_s: float,
    ) -> None:
        self.local_port = local_port
        self.timeout_s = timeout_s
        self.hold_timeout_s = hold_timeout_s
        self.timed_out = False
        self.params: MediaParams | None = None
        self._sock = rtp_sock  # non-blocking; read on each tick (see the module docstring), written directly
        self._watched = False  # read by the clock's epoll set (else by _poll)
        self._v6 = rtp_sock.family == socket.AF_INET6
        self._rtcp = rtcp_transport
        self._clock = media_clock()
        self._rx = RtpReceiver()
        self._jb = JitterBuffer()
        self._dtmf = DtmfDecoder()
        self._tx = RtpSender(secrets.randbits(32), secrets.randbits(16), secrets.randbits(32))
        self._cname = f"phonebot-{secrets.token_hex(6)}"
        self._out: deque[bytes | str] = deque()
        self._dtmf_out: deque[tuple[bytes, bool, int]] = deque()  # telephone-event payload, marker, its timestamp  # 160-byte mu-law frames and mark names (str)
        self._events: deque[Event | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._finished = False
        self._ticks = 0
        self._last_rtp = 0.0
        self._last_rtcp = 0.0
        self._ssrc_changes = 0
        self._rtcp_peer: tuple[str, int] | None = None
        self._lsr: tuple[int, float] | None = None  # an SR's middle NTP bits, and when it came
        self._sent_since_report = False
        self._remote: tuple[int, float] | None = None  # (lost, jitter ms) of our stream as the far end reports it
        self._count = dict.fromkeys(
            ("packets_in", "bytes_in", "packets_out", "bytes_out", "cn_in", "other_pt_in", "dtmf_in", "rtcp_in", "rtcp_out",
             "rtcp_bad", "rtcp_bye", "events_dropped", "marks", "send_errors"), 0)

    @classmethod
    async def open(
        cls, *, host: str, port_min: int, port_max: int, timeout_s: float = 30.0, hold_timeout_s: float = 600.0
    ) -> RtpMedia:
        """Bind an even port from [port_min, port_max] for RTP and the next one for RTCP.
        Raises ``OSError`` when no pair in the range is free."""
        loop = asyncio.get_running_loop()
        lo = port_min + (port_min & 1)
        evens = list(range(lo, port_max, 2))
        if not evens:
            raise OSError(f"no even RTP port in {port_min}-{port_max}")
        start = random.randrange(len(evens))
        family = (await loop.getaddrinfo(host, lo, type=socket.SOCK_DGRAM))[0][0]
        last: OSError | None = None
        for i in range(min(len(evens), 256)):
            port = evens[(start + i) % len(evens)]
            try:
                rtp_sock = _bind(family, host, port)
            except OSError as e:
                last = e
                continue
            try:
                rtcp_t, rtcp_p = await loop.create_datagram_endpoint(_Socket, local_addr=(host, port + 1))
            except OSError as e:
                rtp_sock.close()
                last = e
                continue
            media = cls(rtp_sock, rtcp_t, port, timeout_s=timeout_s, hold_timeout_s=hold_timeout_s)
            rtcp_p.on_datagram = media._on_rtcp
            return media
        raise OSError(f"no free RTP port pair in {port_min}-{port_max}: {last}")

    # -- the carrier's side -------------------------------------------------------------------

    def configure(self, params: MediaParams, *, peer_host: str | None = None) -> None:
        """Apply an answer (the first, or a re-INVITE's: hold, unhold, a new codec or address).
        ``peer_host`` is the signalling peer's IP, also trusted as a media source behind NAT."""
        if self._closed:
            return
        now = self._clock.loop.time()
        first = self.params is None
        if not first and self.params is not None and self.params.remote_addr != params.remote_addr:
            self._rtcp_peer = None
        self.params = params
        self._rx.expect(params.remote_addr, now, peer_host)
        self._last_rtp = self._last_rtcp = now  # the timeout counts from the (re)negotiation
        if first:
            self._drain()  # what came before the answer is not the call's audio (it was dropped before, too)
            self._watched = self._clock.watch(self._sock.fileno(), self)
            self._clock.add(self)

    def events(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            while self._events:
                item = self._events.popleft()
                if item is None:
                    return
                yield item
            if self._finished:
                return
            self._waiter = self._clock.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def play(self, frames: bytes) -> None:
        if self._closed or not frames:
            return
        out = self._out
        for i in range(0, len(frames), FRAME):
            chunk = frames[i : i + FRAME]
            out.append(chunk if len(chunk) == FRAME else chunk + ULAW_SILENCE[len(chunk) :])

    def mark(self, name: str) -> None:
        if self._closed:
            return
        if self._out:
            self._out.append(name)
        else:
            self._emit(MarkIn(name))  # nothing queued before it: everything before it was sent

    def clear(self) -> None:
        for item in self._out:
            if isinstance(item, str):
                self._emit(MarkIn(item))
        self._out.clear()

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> bool:
        """Key ``digit`` as RFC 4733 telephone-events (False when none were negotiated). The
        key press takes the place of audio for its duration; queued audio waits."""
        params = self.params
        if self._closed or params is None or params.dtmf_payload_type is None:
            return False
        ts = self._tx.timestamp + FRAME * sum(1 for _ in self._dtmf_out)
        self._dtmf_out.extend((payload, marker, ts & 0xFFFFFFFF) for payload, marker in encode_event(digit, duration_ms=duration_ms))
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._clock.remove(self)
        self._unwatch()
        self._send_rtcp(bye=True)
        self._sock.close()
        self._rtcp.close()
        self._finish(timed_out=False)

    def stats(self) -> dict[str, int | float]:
        source = self._rx.source
        out: dict[str, int | float] = dict(self._count)
        out.update(self._jb.stats())
        out.update(
            lost=source.lost if source else 0, jitter_ms=round(source.jitter / 8, 1) if source else 0.0, strangers=self._rx.strangers,
            malformed=self._rx.malformed, relatched=self._rx.relatched, ssrc_changes=self._rx.ssrc_changes, stalls=self._clock.stalls,
            dtmf_events=self._dtmf.events, queued_frames=sum(1 for i in self._out if not isinstance(i, str)),
        )
        if self._remote is not None:
            out.update(remote_lost=self._remote[0], remote_jitter_ms=self._remote[1])
        return out

    # -- inside ------------------------------------------------------------------------------

    def _emit(self, event: Event | None) -> None:
        if isinstance(event, AudioIn) and len(self._events) >= MAX_EVENTS:
            self._count["events_dropped"] += 1
            return
        if isinstance(event, MarkIn):
            self._count["marks"] += 1
        self._events.append(event)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _finish(self, *, timed_out: bool) -> None:
        if self._finished:
            return
        self._finished = True
        self.timed_out = timed_out
        self._clock.remove(self)
        self._unwatch()
        self._emit(None)

    def _poll(self, now: float) -> None:
        """Read what arrived on the RTP socket since the last tick (see the module docstring)."""
        recv = self._sock.recvfrom
        for _ in range(POLL_MAX):
            try:
                data, addr = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error reported on the socket: the media timeout decides
                return
            self._on_rtp(data, addr, now)
            if self._finished:
                return

    def read_one(self, now: float) -> None:
        """One datagram (the clock's epoll set says one is waiting)."""
        try:
            data, addr = self._sock.recvfrom(RECV_SIZE)
        except OSError:  # nothing after all, or an ICMP error reported on the socket
            return
        self._on_rtp(data, addr, now)

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            self._clock.unwatch(self._sock.fileno())

    def _drain(self) -> None:
        recv = self._sock.recvfrom
        for _ in range(POLL_MAX * 4):
            try:
                recv(RECV_SIZE)
            except OSError:
                return

    def _on_rtp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        params = self.params
        if params is None or self._finished:
            return
        pkt = self._rx.accept(data, addr, now)
        if pkt is None:
            return
        self._last_rtp = now
        count = self._count
        count["packets_in"] += 1
        count["bytes_in"] += len(data)
        pt = pkt.payload_type
        if pt == params.payload_type:
            if self._rx.ssrc_changes != self._ssrc_changes:
                self._ssrc_changes = self._rx.ssrc_changes
                self._jb.reset()
            payload = pkt.payload if params.codec == "PCMU" else alaw.to_ulaw(pkt.payload)
            self._jb.push(pkt.timestamp, payload, pkt.marker)
        elif pt == params.dtmf_payload_type:
            digit = self._dtmf.feed(pkt.ssrc, pkt.timestamp, pkt.payload)
            if digit is not None and params.receiving:
                count["dtmf_in"] += 1
                self._emit(DtmfIn(digit))
        elif pt == CN:
            count["cn_in"] += 1
        elif pt in (0, 8):  # G.711 on its static type though another was agreed (seen after re-INVITEs): still audio
            count["other_pt_in"] += 1
            self._jb.push(pkt.timestamp, pkt.payload if pt == 0 else alaw.to_ulaw(pkt.payload), pkt.marker)
        else:
            count["other_pt_in"] += 1

    def _on_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        params = self.params
        if params is None or self._finished:
            return
        addr = plain(addr)
        source = self._rx.latched or params.remote_addr
        if addr[0] != source[0]:
            self._rx.strangers += 1
            return
        try:
            info = rtcp.parse(data)
        except rtcp.RtcpError:
            self._count["rtcp_bad"] += 1
            return
        now = self._clock.loop.time()
        self._last_rtcp = now
        self._rtcp_peer = (addr[0], addr[1])
        self._count["rtcp_in"] += 1
        if info.lsr is not None:
            self._lsr = (info.lsr, now)
        if info.bye:
            self._count["rtcp_bye"] += 1
        for block in info.blocks:
            if block.ssrc == self._tx.ssrc:  # how our stream reaches them
                self._remote = (block.lost, round(block.jitter / 8, 1))

    def fail(self) -> None:
        """End this call's media after a bug in its tick (the clock goes on for the others)."""
        self._finish(timed_out=False)

    def tick(self, now: float, missed: int) -> None:
        params = self.params
        if params is None:
            return
        if not self._watched:
            self._poll(now)
        self._ticks += 1
        sending = params.sending
        if missed:
            self._tx.skip(missed * FRAME)
        # outbound: the next frame (or silence), then the marks it completes
        if self._dtmf_out:
            self._send_event(params, sending)
        else:
            self._send_audio(params, sending)
        # inbound: one frame a slot from the jitter buffer (and the slots a stall skipped)
        talking = params.direction == "sendrecv"
        for _ in range(missed + 1):
            got = self._jb.tick()
            if got is not None and talking:
                self._emit(AudioIn(got))
        if self._ticks % RTCP_TICKS == 0:
            self._send_rtcp()
        # the media timeout: RTP must flow on a live call; on hold (either way) RTCP is enough
        if talking:
            idle = now - self._last_rtp
            limit = self.timeout_s
        else:
            idle = now - max(self._last_rtp, self._last_rtcp)
            limit = self.hold_timeout_s
        if idle > limit:
            log.info("sip media timeout: no media for %.0f s (direction %s)", idle, params.direction)
            self._finish(timed_out=True)

    def _send_event(self, params: MediaParams, sending: bool) -> None:
        """One packet of a key press instead of audio (queued audio and marks wait for it)."""
        payload, marker, ts = self._dtmf_out.popleft()
        if sending and params.dtmf_payload_type is not None:
            data = self._tx.event(params.dtmf_payload_type, payload, ts, marker)
            self._send(data, params)
            self._count["packets_out"] += 1
            self._count["bytes_out"] += len(data)
            self._sent_since_report = True
        self._tx.skip(FRAME, marker=False)

    def _send_audio(self, params: MediaParams, sending: bool) -> None:
        out = self._out
        frame = ULAW_SILENCE
        if out:
            while out and isinstance(out[0], str):
                self._emit(MarkIn(out.popleft()))  # type: ignore[arg-type]
            if out:
                frame = out.popleft()  # type: ignore[assignment]
            while out and isinstance(out[0], str):
                self._emit(MarkIn(out.popleft()))  # type: ignore[arg-type]
        if sending:
            payload = frame if params.codec == "PCMU" else alaw.from_ulaw(frame)
            data = self._tx.packet(params.payload_type, payload)
            self._send(data, params)
            self._count["packets_out"] += 1
            self._count["bytes_out"] += len(data)
            self._sent_since_report = True
        else:
            self._tx.skip(FRAME)

    def _send(self, data: bytes, params: MediaParams) -> None:
        """Symmetric RTP: back to where theirs comes from (else the negotiated address). A full
        socket buffer or an ICMP error loses the packet (counted), as a network would."""
        addr = self._rx.latched or params.remote_addr
        if self._v6 and "." in addr[0]:
            addr = (f"::ffff:{addr[0]}", addr[1])
        try:
            self._sock.sendto(data, addr)
        except OSError:
            self._count["send_errors"] += 1

    def _to(self, addr: tuple[str, int]) -> tuple[str, int]:
        """An IPv4 destination on a dual-stack (IPv6) socket is written ``::ffff:a.b.c.d``."""
        if self._v6 and "." in addr[0]:
            return (f"::ffff:{addr[0]}", addr[1])
        return addr

    def _send_rtcp(self, *, bye: bool = False) -> None:
        params = self.params
        if params is None or params.remote_addr[0] in ("0.0.0.0", "::"):
            return
        if self._rtcp_peer is not None:
            dest = self._rtcp_peer
        else:
            host, port = self._rx.latched or params.remote_addr
            dest = (host, params.rtcp_port or port + 1)
        sent = (self._tx.timestamp, self._tx.packets, self._tx.octets) if self._sent_since_report else None
        self._sent_since_report = False
        lsr, dlsr = (self._lsr[0], self._clock.loop.time() - self._lsr[1]) if self._lsr else (None, None)
        data = rtcp.report(
            ssrc=self._tx.ssrc, cname=self._cname, sent=sent, source=self._rx.source, source_ssrc=self._rx.ssrc, lsr=lsr, dlsr_s=dlsr,
            now=time.time(), bye=bye,
        )
        self._rtcp.sendto(data, self._to(dest))
        self._count["rtcp_out"] += 1
