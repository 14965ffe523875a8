"""RTP packets (RFC 3550), sans I/O: parse, build, the sender's numbering, and the receiver's
source filter (symmetric RTP latching) with the reception statistics RTCP reports.

Latching is what stops RTP hijack: media is taken from one source only. It latches on the
first valid packet from the address the SDP negotiated. Behind NAT the packets come from
another address; such a source is taken only in the first ``learn_s`` seconds after a
(re)configuration, only when its IP is the negotiated one (NAT rewrote the port), the
signalling peer's, or the SDP address is private (the endpoint's own LAN address), and
only after ``probation`` consecutive packets with one SSRC. A latched source that moves
(within those hosts) keeps its SSRC: within the learning window the move is followed. Every
other packet is a stranger's: dropped and counted. The negotiated address itself is taken
whenever nothing was latched yet (a far end that starts sending late).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

_HEADER = struct.Struct("!BBHII")
RTP_VERSION = 2
CN = 13  # comfort noise (RFC 3389): ignored


class RtpError(ValueError):
    """Not an RTP packet (or a malformed one)."""


class RtpPacket(NamedTuple):
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse(data: bytes) -> RtpPacket:
    """One RTP packet; CSRCs, a header extension and padding are skipped. Raises ``RtpError``."""
    n = len(data)
    if n < 12:
        raise RtpError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}")
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if n < start + 4:
            raise RtpError("truncated header extension")
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or n - pad < start:
            raise RtpError("bad padding")
        end -= pad
    if start > end:
        raise RtpError("header longer than the packet")
    pt = b1 & 0x7F
    if 72 <= pt <= 76:  # 200-204 with the marker bit: an RTCP packet on the RTP port (RFC 5761)
        raise RtpError("RTCP on the RTP port")
    return RtpPacket(pt, bool(b1 & 0x80), seq, ts, ssrc, bytes(data[start:end]))


def build(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


class RtpSender:
    """The outbound stream's numbering: random start (RFC 3550 5.1), seq +1 per packet,
    timestamp +160 per 20 ms frame; marker on the first packet and after a jump."""

    def __init__(self, ssrc: int, seq: int, timestamp: int) -> None:
        self.ssrc = ssrc
        self.seq = seq & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self._marker = True
        self.packets = 0
        self.octets = 0  # payload octets, as the SR counts them

    def packet(self, payload_type: int, payload: bytes, samples: int = 160) -> bytes:
        data = build(payload_type, self.seq, self.timestamp, self.ssrc, payload, self._marker)
        self._marker = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(payload)
        return data

    def event(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> bytes:
        """A telephone-event packet: the event's own timestamp, the next sequence number."""
        data = build(payload_type, self.seq, timestamp, self.ssrc, payload, marker)
        self.seq = (self.seq + 1) & 0xFFFF
        self.packets += 1
        self.octets += len(payload)
        return data

    def skip(self, samples: int, marker: bool = True) -> None:
        """Time passed with no audio sent (a stalled loop, a hold, a key press): the timestamp
        follows the clock, the sequence does not (no gap that looks like loss); after a gap in
        the audio the next packet has the marker."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._marker = self._marker or marker


class SourceStats:
    """RFC 3550 A.1/A.8 reception statistics of one SSRC: extended sequence, loss, jitter."""

    def __init__(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0  # in timestamp units (1/8000 s)
        self._transit: float | None = None

    def update(self, seq: int, timestamp: int, arrival_s: float) -> None:
        delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < 3000:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        self.received += 1
        transit = arrival_s * 8000 - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 8000 * 10:  # a timestamp jump (new talk spurt) is not jitter
                self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    def interval(self) -> tuple[int, int]:
        """(fraction lost 0-255, cumulative lost) since the last call: the report block's fields."""
        expected, received = self.expected, self.received
        exp_i, rec_i = expected - self.expected_prior, received - self.received_prior
        self.expected_prior, self.received_prior = expected, received
        lost_i = exp_i - rec_i
        fraction = (lost_i << 8) // exp_i if exp_i > 0 and lost_i > 0 else 0
        return min(fraction, 255), max(0, min(self.lost, 0x7FFFFF))


def plain(addr: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    """(host, port) as the SDP would write it: IPv6 flow info and scope dropped, and an IPv4
    peer seen on a dual-stack socket (``::ffff:192.0.2.1``) back to ``192.0.2.1``."""
    host = addr[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, addr[1])


def _private(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not ip.is_global


class RtpReceiver:
    """Decides whose packets are the call's media (see the module docstring)."""

    def __init__(self, *, learn_s: float = 3.0, probation: int = 2) -> None:
        self.learn_s = learn_s
        self.probation = probation
        self.expected: tuple[str, int] | None = None
        self.peer_host: str | None = None
        self.latched: tuple[str, int] | None = None
        self.ssrc: int | None = None
        self.source: SourceStats | None = None
        self._learn_until = 0.0
        self._raw_latched: object = None  # the latched address as the socket reports it (the fast path's key)
        self._candidate: tuple[tuple[str, int], int, int] | None = None  # address, ssrc, packets seen
        self.strangers = 0
        self.malformed = 0
        self.relatched = 0
        self.ssrc_changes = 0

    def expect(self, addr: tuple[str, int], now: float, peer_host: str | None = None) -> None:
        """A new negotiated address (answer, re-INVITE): re-learn for ``learn_s`` seconds."""
        if addr != self.expected:
            self.expected = addr
            self.latched = None
            self._raw_latched = None
            self._candidate = None
        self.peer_host = peer_host
        self._learn_until = now + self.learn_s

    def accept(self, data: bytes, addr: tuple[str, int], now: float) -> RtpPacket | None:
        """The packet when it is the call's media, else None (counted)."""
        if addr == self._raw_latched and len(data) >= 12 and data[0] == 0x80 and not 72 <= data[1] & 0x7F <= 76:
            # the usual packet (no CSRC, extension or padding) from the latched source: no copy of the checks below
            b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
            pkt = RtpPacket(b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc, data[12:])
            if ssrc == self.ssrc and self.source is not None:
                self.source.update(seq, ts, now)
                return pkt
        raw = addr
        addr = plain(addr)
        try:
            pkt = parse(data)
        except RtpError:
            if addr == self.latched or addr == self.expected:
                self.malformed += 1
            else:
                self.strangers += 1
            return None
        if addr != self.latched and not self._learn(pkt, addr, now):
            self.strangers += 1
            return None
        self._raw_latched = raw
        if pkt.ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1  # a PBX re-bridging the call starts a new stream from the same address
            self.ssrc = pkt.ssrc
            self.source = SourceStats(pkt.seq)
        assert self.source is not None
        self.source.update(pkt.seq, pkt.timestamp, now)
        return pkt

    def _learn(self, pkt: RtpPacket, addr: tuple[str, int], now: float) -> bool:
        if addr == self.expected and (self.latched is None or now < self._learn_until):
            self._latch(addr)
            return True
        if now >= self._learn_until or self.expected is None:
            return False
        host = self.expected[0]
        if not (addr[0] == host or addr[0] == self.peer_host or _private(host) or self.latched and addr[0] == self.latched[0]):
            return False
        if self.latched is not None:
            if pkt.ssrc == self.ssrc:  # the same stream from a new NAT binding
                self._latch(addr)
                self.relatched += 1
                return True
            return False
        c = self._candidate
        seen = c[2] + 1 if c is not None and c[0] == addr and c[1] == pkt.ssrc else 1
        self._candidate = (addr, pkt.ssrc, seen)
        if seen >= self.probation:
            self._latch(addr)
            return True
        return False

    def _latch(self, addr: tuple[str, int]) -> None:
        self.latched = addr
        self._raw_latched = None
        self._candidate = None
