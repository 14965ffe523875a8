"""Minimal RTCP (RFC 3550 6): the bot's SR or RR with an SDES CNAME every ~5 s, and what
the far end's compound packets say (a report, a BYE) for liveness. Sans I/O."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from bot.carriers.sip.rtp import SourceStats

SR, RR, SDES, BYE = 200, 201, 202, 203
NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970
_HDR = struct.Struct("!BBH")


class RtcpError(ValueError):
    """Not an RTCP compound packet."""


@dataclass(frozen=True)
class ReportBlock:
    """What the far end says about one stream it receives (ours, when ``ssrc`` is ours)."""

    ssrc: int
    fraction_lost: int  # of 256, since its last report
    lost: int  # cumulative (signed 24 bits: duplicates can make it negative)
    jitter: int  # timestamp units


@dataclass(frozen=True)
class RtcpInfo:
    ssrc: int | None  # the sender of the first packet
    types: tuple[int, ...]  # packet types in the compound (200 SR, 201 RR, 202 SDES, 203 BYE, ...)
    bye: bool
    lsr: int | None  # the middle 32 bits of an SR's NTP time (for our RR's LSR field)
    blocks: tuple[ReportBlock, ...] = ()


def parse(data: bytes) -> RtcpInfo:
    """Walk a compound packet; raises ``RtcpError`` when it is not RTCP."""
    pos, types, ssrc, lsr = 0, [], None, None
    blocks: list[ReportBlock] = []
    n = len(data)
    while pos < n:
        if n - pos < 4:
            raise RtcpError("truncated RTCP header")
        b0, pt, length = _HDR.unpack_from(data, pos)
        if b0 >> 6 != 2 or not 192 <= pt <= 223:
            raise RtcpError("not RTCP")
        size = 4 * (length + 1)
        if pos + size > n:
            raise RtcpError("RTCP packet longer than the datagram")
        if ssrc is None and size >= 8:
            ssrc = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if pt == SR and size >= 28 and lsr is None:
            lsr = int.from_bytes(data[pos + 10 : pos + 14], "big")
        if pt in (SR, RR):
            first = pos + (28 if pt == SR else 8)
            for k in range(b0 & 0x1F):
                at = first + 24 * k
                if at + 24 > pos + size:
                    break
                b_ssrc, fraction, lost3, _, jitter = struct.unpack_from("!IB3sII", data, at)
                blocks.append(ReportBlock(b_ssrc, fraction, int.from_bytes(lost3, "big", signed=True), jitter))
        types.append(pt)
        pos += size
    if not types or types[0] not in (SR, RR):
        raise RtcpError("a compound RTCP packet starts with SR or RR")  # RFC 3550 6.1
    return RtcpInfo(ssrc, tuple(types), BYE in types, lsr, tuple(blocks))


def _ntp(now: float) -> tuple[int, int]:
    secs = int(now)
    return (secs + NTP_EPOCH) & 0xFFFFFFFF, int((now - secs) * (1 << 32)) & 0xFFFFFFFF


def _block(source: SourceStats, ssrc: int, lsr: int | None, dlsr_s: float | None) -> bytes:
    fraction, lost = source.interval()
    dlsr = int(dlsr_s * 65536) if lsr is not None and dlsr_s is not None else 0
    return struct.pack(
        "!IB3sIIII", ssrc, fraction, lost.to_bytes(3, "big"), source.extended_max & 0xFFFFFFFF, int(source.jitter),
        lsr or 0, dlsr & 0xFFFFFFFF,
    )


def report(
    *,
    ssrc: int,
    cname: str,
    sent: tuple[int, int, int] | None,  # (rtp timestamp now, packets, octets) when we sent media since the last report
    source: SourceStats | None,
    source_ssrc: int | None,
    lsr: int | None = None,
    dlsr_s: float | None = None,  # seconds since that SR arrived
    now: float | None = None,
    bye: bool = False,
) -> bytes:
    """Our compound packet: SR (when sending) or RR, an SDES CNAME, and a BYE when leaving."""
    wall = time.time() if now is None else now
    blocks = b""
    if source is not None and source_ssrc is not None:
        blocks = _block(source, source_ssrc, lsr, dlsr_s)
    count = 1 if blocks else 0
    if sent is not None:
        hi, lo = _ntp(wall)
        body = struct.pack("!IIIIII", ssrc, hi, lo, sent[0] & 0xFFFFFFFF, sent[1] & 0xFFFFFFFF, sent[2] & 0xFFFFFFFF) + blocks
        first = _HDR.pack(0x80 | count, SR, len(body) // 4) + body
    else:
        body = struct.pack("!I", ssrc) + blocks
        first = _HDR.pack(0x80 | count, RR, len(body) // 4) + body
    name = cname.encode()[:255]
    item = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\x00"
    item += b"\x00" * (-len(item) % 4)
    out = first + _HDR.pack(0x81, SDES, len(item) // 4) + item
    if bye:
        out += _HDR.pack(0x81, BYE, 1) + struct.pack("!I", ssrc)
    return out
