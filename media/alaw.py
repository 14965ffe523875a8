"""G.711 A-law <-> mu-law, byte for byte through two 256-entry tables (built once with
audioop / audioop-lts): a SIP trunk that offers only PCMA costs one ``bytes.translate``
per 20 ms frame each way, and the engine stays mu-law end to end."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SILENCE = 0xD5  # A-law code for zero amplitude (even bits inverted)

_CODES = bytes(range(256))
ALAW_TO_ULAW = audioop.lin2ulaw(audioop.alaw2lin(_CODES, 2), 2)
ULAW_TO_ALAW = audioop.lin2alaw(audioop.ulaw2lin(_CODES, 2), 2)


def to_ulaw(alaw: bytes) -> bytes:
    return alaw.translate(ALAW_TO_ULAW)


def from_ulaw(ulaw: bytes) -> bytes:
    return ulaw.translate(ULAW_TO_ALAW)


def decode(alaw: bytes) -> bytes:
    """A-law bytes -> PCM16 little-endian."""
    return audioop.alaw2lin(alaw, 2)
