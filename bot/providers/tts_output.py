"""Is a TTS reply plausibly the text? A vendor that answers a sentence with 80 bytes
of audio (or a short error body with an audio content type) has not said it.

``Plausible`` holds audio back until there is enough of it to be speech of the
text, so a reply that is too short fails before anything was played, and failover
and the fallback prompt can still run. The bound is deliberately loose (a very fast
talker) and capped, so holding back costs little latency. ``AudioOut`` is every TTS
adapter's output check (this, sample alignment, no audio at all) in one object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import BAD_RESPONSE, EMPTY_RESULT

if TYPE_CHECKING:
    from bot.providers.kit import Edge

MS_PER_CHAR = 20  # fast speech is ~60 ms per letter; a third of that is a safe floor
MAX_HOLD_MS = 300  # never hold more than this back


def min_plausible_ms(text: str) -> float:
    return min(MAX_HOLD_MS, MS_PER_CHAR * sum(c.isalnum() for c in text))


class Plausible:
    """Feed output chunks, pass on what ``feed``/``end`` return; ``end`` returns None
    when the whole reply was too short to be the text."""

    def __init__(self, text: str, bytes_per_ms: float) -> None:
        self.need = int(min_plausible_ms(text) * bytes_per_ms)
        self.total = 0
        self._held: list[bytes] | None = []

    def feed(self, chunk: bytes) -> bytes:
        self.total += len(chunk)
        if self._held is None:
            return chunk
        self._held.append(chunk)
        if self.total < self.need:
            return b""
        out, self._held = b"".join(self._held), None
        return out

    def end(self) -> bytes | None:
        """What is still held back, or None if the reply is implausibly short."""
        if self._held is None:
            return b""
        if self.total < self.need or self.total == 0:
            return None
        out, self._held = b"".join(self._held), None
        return out


class AudioOut:
    """What every TTS adapter checks of its output, in one place: PCM16 kept
    sample-aligned, audio held back until it is ``Plausible``, no audio at all
    ``empty_result``, too little or an odd PCM length ``bad_response``.
    ``feed`` each chunk and pass on what it returns; ``end`` returns the rest."""

    def __init__(self, edge: Edge, text: str, *, mulaw: bool, pcm_rate: int) -> None:
        self.edge, self.mulaw = edge, mulaw
        self.total = 0
        self._carry = b""
        self._check = Plausible(text, 8 if mulaw else pcm_rate * 2 / 1000)

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        self.total += len(chunk)
        if not self.mulaw:  # keep PCM16 chunks sample-aligned
            chunk, self._carry = aligned(self._carry + chunk)
            if not chunk:
                return b""
        return self._check.feed(chunk)

    def end(self) -> bytes:
        if self.total == 0:
            raise self.edge.error(EMPTY_RESULT, "no audio returned")
        if self._carry:
            raise self.edge.error(BAD_RESPONSE, "PCM16 audio of odd length")
        rest = self._check.end()
        if rest is None:
            raise self.edge.error(BAD_RESPONSE, f"{self._check.total} bytes of audio cannot be the text")
        return rest


def looks_like_text(chunk: bytes, *, strict: bool) -> bool:
    """A body that is a web page or JSON served with an audio content type.

    For PCM one leading ``{`` or ``<`` is enough (real PCM starts near zero); raw mu-law
    can hold any byte, so there only a recognisable document opening counts.
    """
    head = chunk[:16].lstrip().lower()
    if head.startswith((b"<html", b"<!doctype", b"<?xml", b'{"')):
        return True
    return not strict and chunk[:1] in (b"{", b"<")


def aligned(data: bytes) -> tuple[bytes, bytes]:
    """Split ``data`` into a whole number of 16-bit samples and the leftover byte."""
    cut = len(data) & ~1
    return data[:cut], data[cut:]
