"""G.711 mu-law <-> 16-bit linear PCM (little-endian), via audioop / audioop-lts."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SILENCE = 0xFF  # mu-law code for zero amplitude


def decode(ulaw: bytes) -> bytes:
    """mu-law bytes -> PCM16 little-endian (two bytes per input byte)."""
    return audioop.ulaw2lin(ulaw, 2)


def encode(pcm16: bytes) -> bytes:
    """PCM16 little-endian -> mu-law bytes (one byte per sample)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(pcm16)}")
    return audioop.lin2ulaw(pcm16, 2)


def silence(n_samples: int) -> bytes:
    return bytes([SILENCE]) * n_samples
