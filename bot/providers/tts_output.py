"""Is a TTS reply plausibly the text? A vendor that answers a sentence with 80 bytes
of audio (or a short error body with an audio content type) has not said it.

``Plausible`` holds audio back until there is enough of it to be speech of the
text, so a reply that is too short fails before anything was played, and failover
and the fallback prompt can still run. The bound is deliberately loose (a very fast
talker) and capped, so holding back costs little latency.
"""

from __future__ import annotations

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
