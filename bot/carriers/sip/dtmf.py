"""DTMF on SIP calls: RFC 4733 telephone-events over RTP, and SIP INFO bodies.

An RFC 4733 event is one key press spread over several packets with the same RTP
timestamp: a start (marker bit), updates every 50 ms or so, and the end packet sent three
times. ``DtmfDecoder`` reports the key once, on the first packet of a new event it sees, so
a lost start packet or the three end packets never give the digit twice or lose it.
"""

from __future__ import annotations

import struct

DIGITS = "0123456789*#ABCD"  # events 0-15; 16 (flash) and above are not keys
_EVENT = struct.Struct("!BBH")


def decode_event(payload: bytes) -> tuple[int, bool, int] | None:
    """(event, end, duration) of a telephone-event payload, or None when it is not one."""
    if len(payload) < 4:
        return None
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), duration


class DtmfDecoder:
    """Telephone-event packets in, one digit per key press out."""

    def __init__(self) -> None:
        self._current: tuple[int, int] | None = None  # (ssrc, timestamp) of the event reported last
        self.events = 0
        self.ignored = 0

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        """The digit when this packet starts a new key press, else None."""
        ev = decode_event(payload)
        if ev is None or ev[0] >= len(DIGITS):
            self.ignored += 1
            return None
        key = (ssrc, timestamp)
        if key == self._current:
            return None
        self._current = key
        self.events += 1
        return DIGITS[ev[0]]


def encode_event(digit: str, *, duration_ms: int = 100, volume: int = 10, step_ms: int = 20) -> list[tuple[bytes, bool]]:
    """The payloads of one key press (start with the marker, updates every ``step_ms``, the end
    three times), each with its marker flag; all are sent with one RTP timestamp."""
    event = DIGITS.index(digit.upper())
    out: list[tuple[bytes, bool]] = []
    samples = duration_ms * 8
    for elapsed in range(step_ms * 8, samples, step_ms * 8):
        out.append((_EVENT.pack(event, volume & 0x3F, elapsed), not out))
    end = _EVENT.pack(event, 0x80 | (volume & 0x3F), min(samples, 0xFFFF))
    return out + [(end, not out)] + [(end, False)] * 2


def parse_info(content_type: str, body: str | bytes) -> str | None:
    """The key of a SIP INFO DTMF body, or None when it carries none.

    ``application/dtmf-relay`` (Cisco style): ``Signal=5`` and ``Duration=160`` lines;
    ``application/dtmf``: the key alone. Some PBXes send 10 and 11 for * and #.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if len(body) > 1024:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/dtmf-relay":
        value = None
        for line in body.splitlines():
            name, sep, v = line.partition("=")
            if sep and name.strip().lower() == "signal":
                value = v.strip()
                break
    elif kind == "application/dtmf":
        value = body.strip()
    else:
        return None
    if value is None:
        return None
    value = value.upper()
    if value in ("10", "11"):
        return "*#"[int(value) - 10]
    if len(value) == 1 and value in DIGITS:
        return value
    if value.isascii() and value.isdigit() and int(value) < len(DIGITS):
        return DIGITS[int(value)]
    return None
