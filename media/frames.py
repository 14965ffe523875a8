"""Cutting 8 kHz mu-law audio into 20 ms frames and joining them back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from media.mulaw import SILENCE

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000  # 160 mu-law bytes = 20 ms


def split(ulaw: bytes, *, pad: bool = True) -> list[bytes]:
    """Cut into 160-byte frames; the last partial frame is padded with mu-law silence
    (or dropped when ``pad`` is False)."""
    out = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        if pad:
            out[-1] = out[-1] + bytes([SILENCE]) * (FRAME_BYTES - len(out[-1]))
        else:
            out.pop()
    return out


def join(frames: Iterable[bytes]) -> bytes:
    return b"".join(frames)


class Framer:
    """Streaming framer: feed chunks of any size, take whole 20 ms frames out."""

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buf += chunk
        n = self.frame_bytes
        whole = len(self._buf) // n * n
        for i in range(0, whole, n):
            yield bytes(self._buf[i : i + n])
        del self._buf[:whole]

    def flush(self, *, pad: bool = True) -> Iterator[bytes]:
        if self._buf:
            rest = bytes(self._buf)
            self._buf.clear()
            if pad:
                yield rest + bytes([SILENCE]) * (self.frame_bytes - len(rest))

    def reset(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)
