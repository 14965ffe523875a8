"""WAV read/write: PCM16 at any rate (mono, or stereo downmixed) and G.711 mu-law
(format 7, what Twilio recordings use). Anything else is refused with a WavError
that says what was found and what is accepted."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from media import mulaw

FORMAT_PCM = 1
FORMAT_MULAW = 7
FORMAT_EXTENSIBLE = 0xFFFE
ACCEPTED = "PCM 16-bit (mono or stereo, any rate) or G.711 mu-law 8-bit"
MAX_RATE = 384_000


class WavError(ValueError):
    """The bytes are not a WAV we accept; the message is safe to show a client."""


@dataclass(frozen=True)
class Audio:
    pcm16: bytes  # mono PCM16 little-endian
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm16) / 2 / self.rate if self.rate else 0.0


MAX_CHUNKS = 64  # real files have a handful (fmt, fact, LIST, data); more is an attack


class WavTooLong(WavError):
    """The header says the audio is longer than the caller accepts."""

    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(f"the audio is {seconds:.1f} s; at most {limit:g} s is accepted")
        self.seconds, self.limit = seconds, limit


@dataclass(frozen=True)
class Header:
    tag: int
    channels: int
    rate: int
    bits: int
    start: int  # where the data chunk's samples begin in the file
    size: int  # bytes of samples, clamped to what the file holds

    @property
    def seconds(self) -> float:
        width = self.channels * max(1, self.bits // 8)
        return self.size / width / self.rate if self.rate and self.channels else 0.0


def header(data: bytes) -> Header:
    """Walk the chunks up to the data chunk (at most MAX_CHUNKS of them) without
    decoding anything. Never reads past ``data``; lying sizes are clamped."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"not a WAV file (no RIFF/WAVE header); accepted: {ACCEPTED}")
    pos = 12
    fmt = None
    for _ in range(MAX_CHUNKS):
        if pos + 8 > len(data):
            break
        cid = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise WavError("WAV fmt chunk is truncated")
            tag, channels, rate, _brate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                (tag,) = struct.unpack_from("<H", data, body + 24)  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise WavError("WAV data chunk comes before its fmt chunk")
            return Header(*fmt, start=body, size=max(0, min(size, len(data) - body)))
        pos = body + size + (size & 1)
    else:
        raise WavError(f"WAV has more than {MAX_CHUNKS} chunks before its data")
    raise WavError("WAV has no data chunk" if fmt else "WAV has no fmt chunk")


def read(data: bytes, max_seconds: float | None = None) -> Audio:
    """Parse a WAV file into mono PCM16. With ``max_seconds``, the duration is checked
    from the header before anything is decoded (WavTooLong)."""
    h = header(data)
    if max_seconds is not None and h.seconds > max_seconds:
        raise WavTooLong(h.seconds, max_seconds)
    return _decode(data[h.start : h.start + h.size], h.tag, h.channels, h.rate, h.bits)


def _decode(payload: bytes, tag: int, channels: int, rate: int, bits: int) -> Audio:
    found = f"format {tag}, {bits}-bit, {channels} channel(s), {rate} Hz"
    if not 1 <= channels <= 2:
        raise WavError(f"WAV has {found}; accepted: {ACCEPTED}")
    if not 1000 <= rate <= MAX_RATE:
        raise WavError(f"WAV sample rate {rate} Hz is out of range (1000 to {MAX_RATE})")
    if tag == FORMAT_PCM and bits == 16:
        frame = 2 * channels
        payload = payload[: len(payload) // frame * frame]
        if channels == 2:
            x = np.frombuffer(payload, dtype="<i2").reshape(-1, 2).astype(np.int32)
            payload = ((x[:, 0] + x[:, 1]) // 2).astype("<i2").tobytes()
        return Audio(payload, rate)
    if tag == FORMAT_MULAW and bits == 8:
        if channels == 2:
            pcm = np.frombuffer(mulaw.decode(payload[: len(payload) // 2 * 2]), dtype="<i2").reshape(-1, 2).astype(np.int32)
            return Audio(((pcm[:, 0] + pcm[:, 1]) // 2).astype("<i2").tobytes(), rate)
        return Audio(mulaw.decode(payload), rate)
    raise WavError(f"WAV has {found}; accepted: {ACCEPTED}")


def _header(tag: int, channels: int, rate: int, bits: int, n_data: int, fact: bool) -> bytes:
    align = channels * bits // 8
    fmt_body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag != FORMAT_PCM:
        fmt_body += struct.pack("<H", 0)  # cbSize for non-PCM formats
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    if fact:
        chunks += b"fact" + struct.pack("<II", 4, n_data // align)
    riff_size = 4 + len(chunks) + 8 + n_data + (n_data & 1)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", n_data)


def write_pcm16(pcm16: bytes, rate: int) -> bytes:
    return _header(FORMAT_PCM, 1, rate, 16, len(pcm16), False) + pcm16 + (b"\0" if len(pcm16) & 1 else b"")


def write_mulaw(ulaw: bytes, rate: int = 8000) -> bytes:
    return _header(FORMAT_MULAW, 1, rate, 8, len(ulaw), True) + ulaw + (b"\0" if len(ulaw) & 1 else b"")
