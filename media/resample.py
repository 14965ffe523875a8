"""Anti-aliased resampling of mono PCM16 on soxr (audioop.ratecv has no filter)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(pcm16: bytes, in_rate: int, out_rate: int) -> bytes:
    """One-shot resample of a whole buffer."""
    if in_rate == out_rate or not pcm16:
        return pcm16
    x = np.frombuffer(pcm16, dtype="<i2")
    y = soxr.resample(x, in_rate, out_rate, quality="HQ")
    return np.asarray(y, dtype="<i2").tobytes()


class StreamResampler:
    """Streaming resampler: output comes in bursts (soxr holds back a few ms); call
    ``flush()`` at the end of the stream to get the tail."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        # None: the rates are equal and audio passes through
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)

    def process(self, pcm16: bytes) -> bytes:
        if self._stream is None:
            return pcm16
        x = np.frombuffer(pcm16, dtype="<i2")
        return np.asarray(self._stream.resample_chunk(x, last=False), dtype="<i2").tobytes()

    def flush(self) -> bytes:
        if self._stream is None:
            return b""
        return np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True), dtype="<i2").tobytes()
