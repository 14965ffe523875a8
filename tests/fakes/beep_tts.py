"""A tiny TTS vendor, as a vendor module looks with the provider kit: what is its own
(its options, its "API": a tone per character) and nothing else. The registry test adds
it through one table line (tests/test_provider_kit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bot.errors import AUTH
from bot.providers.kit import Bounds, Edge
from bot.providers.tts_output import AudioOut
from media import mulaw as g711
from tests.fakes.scripted import tone_pcm

if TYPE_CHECKING:
    from bot.settings import Settings


class BeepTTS:
    name = "beep"
    pcm_rate = 8000

    def __init__(self, *, api_key: str = "", pitch: float = 440.0, timeout: float = 5.0) -> None:
        self.api_key, self.pitch, self.timeout = api_key, pitch, timeout
        self._edge = Edge("tts", self.name, timeout=timeout)

    @classmethod
    def from_settings(cls, s: Settings) -> BeepTTS:
        env = s.vendor_env
        return cls(api_key=env.get("BEEP_API_KEY", ""), pitch=float(env.get("BEEP_PITCH", "440")), timeout=s.tts_timeout)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def _api(self, text: str) -> AsyncIterator[bytes]:
        """The vendor's "wire": 20 ms of tone per letter, in 100 ms chunks."""
        if self.api_key != "good-key":
            raise PermissionError("401")
        pcm = tone_pcm(20 * sum(c.isalnum() for c in text), 8000, self.pitch)
        for i in range(0, len(pcm), 1600):
            yield pcm[i : i + 1600]

    async def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        out = AudioOut(self._edge, text, mulaw=mulaw, pcm_rate=self.pcm_rate)
        with self._edge.guard():
            try:
                source = self._api(text)
                async for pcm in self._edge.read(Bounds.from_now(self.timeout, self.timeout)).over(source):
                    audio = out.feed(g711.encode(pcm) if mulaw else pcm)
                    if audio:
                        yield audio
            except PermissionError:
                raise self._edge.error(AUTH, "HTTP 401") from None
            rest = out.end()
            if rest:
                yield rest
