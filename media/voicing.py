"""Is 8 kHz speech voiced just now? A periodicity measure for the barge-in gate.

A vowel or a voiced consonant repeats at the pitch period; a breath, a cough's hiss
or line noise does not. The measure is the highest normalised autocorrelation of the
last 40 ms (two 20 ms frames) against themselves delayed by a pitch lag of 2.5-16 ms
(400 down to 62.5 Hz); the delayed copy reaches back into the frame before, so every
lag compares the same number of samples. Near 1 for a voiced sound. Noise stays lower:
about 0.2-0.4 for broadband noise (a breath, the line), more for narrowband noise
(a low nasal breath, a handset rumble), whose correlation lasts a few milliseconds;
a 40 ms window keeps the estimate steady enough that such noise seldom reaches the
threshold, where 20 ms let it through several times as often (``bench.barge_in``).
"""

from __future__ import annotations

import numpy as np

from media.frames import RATE

WINDOW = RATE * 40 // 1000  # samples compared: two 20 ms frames
LAG_MIN = RATE * 25 // 10_000  # 2.5 ms: 400 Hz
LAG_MAX = RATE * 16 // 1000  # 16 ms: 62.5 Hz
HISTORY = WINDOW + LAG_MAX  # samples of PCM the measure needs
VOICED = 0.55  # chosen by bench.barge_in: speech onsets reach it within a few frames, breaths and coughs seldom

_K = np.arange(LAG_MAX, LAG_MIN - 1, -1)  # the lags, in the order np.correlate returns them


def periodicity(pcm16: bytes) -> float:
    """The highest normalised autocorrelation of the last ``WINDOW`` samples of
    ``pcm16`` (16-bit little-endian, at least ``HISTORY`` samples) at a pitch lag."""
    x = np.frombuffer(pcm16, "<i2")
    if len(x) < HISTORY:
        raise ValueError(f"at least {HISTORY} samples expected, got {len(x)}")
    x = x[len(x) - HISTORY:].astype(np.float64)
    sq = np.concatenate(([0.0], np.cumsum(x * x)))  # sq[i]: energy of x[:i]
    here = sq[HISTORY] - sq[LAG_MAX]
    if here <= 0:  # digital silence
        return 0.0
    num = np.correlate(x[: HISTORY - LAG_MIN], x[LAG_MAX:], "valid")  # the window, x[LAG_MAX:], against x[LAG_MAX - k:HISTORY - k]
    there = sq[HISTORY - _K] - sq[LAG_MAX - _K]
    return float(np.max(num / np.sqrt(there * here + 1e-9)))


def is_voiced(pcm16: bytes, threshold: float = VOICED) -> bool:
    return periodicity(pcm16) >= threshold
