"""ElevenLabs streamed text-to-speech through the official SDK.

``ulaw_8000`` for the phone path (exactly what Twilio plays) or ``pcm_16000``.
``timeout`` (TTS_TIMEOUT) bounds the wait for the first audio and every gap between
chunks. A body that is not audio (a content type other than audio/* or
octet-stream, a body that starts like JSON/HTML, PCM of odd length, or audio too
short to be the text: bot/providers/tts_output.py) is ``bad_response``; no bytes at
all is ``empty_result``. Deadlines, error mapping and the output checks are the provider
kit's (bot/providers/kit.py); this module holds the SDK call and the body check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from elevenlabs.client import AsyncElevenLabs

from bot.errors import BAD_RESPONSE
from bot.providers.kit import Bounds, Edge, HttpPool
from bot.providers.tts_output import AudioOut, looks_like_text

if TYPE_CHECKING:
    from bot.settings import Settings

_OCTETS = ("", "application/octet-stream", "binary/octet-stream")


class ElevenLabsTTS:
    """TTS adapter over ``text_to_speech.stream`` (raw response, for its headers)."""

    name = "elevenlabs"
    pcm_rate = 16000

    def __init__(
        self, *, api_key: str = "", base_url: str = "", voice_id: str = "21m00Tcm4TlvDq8ikWAM",
        model: str = "eleven_flash_v2_5", timeout: float = 5.0,
    ) -> None:
        """``base_url``: a gateway or a fake (empty: ElevenLabs' own); ``timeout``: to the
        first audio and between chunks, in seconds."""
        self._api_key = api_key
        self._base_url = base_url
        self._voice_id = voice_id
        self._model = model
        self._timeout = timeout
        self._edge = Edge("tts", self.name, timeout=timeout)
        self._pool = HttpPool((base_url.rstrip("/") or "https://api.elevenlabs.io") + "/", "tts")
        self._client: AsyncElevenLabs | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> ElevenLabsTTS:
        return cls(
            api_key=s.elevenlabs_api_key, base_url=s.elevenlabs_base_url, voice_id=s.elevenlabs_voice_id,
            model=s.elevenlabs_model, timeout=s.tts_timeout,
        )

    async def start(self) -> None:
        if self._client is not None:
            return
        backstop = self._timeout + 1.0  # the kit's deadlines are the real bound
        self._client = AsyncElevenLabs(
            api_key=self._api_key, base_url=self._base_url or None, timeout=backstop,
            httpx_client=self._pool.open(backstop, follow_redirects=True),
        )

    async def warm(self) -> None:
        """Open a connection to the API host now, so the first sentence has one ready."""
        await self._pool.warm()

    async def close(self) -> None:
        self._client = None
        await self._pool.close()

    async def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        """Stream raw 8 kHz mu-law (``mulaw``) or PCM16 at ``pcm_rate``."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        edge = self._edge
        bounds = Bounds.from_now(self._timeout, self._timeout, first_what="no audio", gap_what="audio stream stalled")
        self._pool.used()
        out = AudioOut(edge, text, mulaw=mulaw, pcm_rate=self.pcm_rate)
        with edge.guard():
            async with AsyncExitStack() as stack:
                opening = stack.enter_async_context(
                    self._client.text_to_speech.with_raw_response.stream(
                        self._voice_id, text=text, model_id=self._model,
                        output_format="ulaw_8000" if mulaw else f"pcm_{self.pcm_rate}",
                        optimize_streaming_latency=3,
                        # None = hand chunks on as they arrive (the SDK re-chunks to 1 KiB)
                        request_options={"chunk_size": None},
                    )
                )
                response = await edge.bounded(opening, by=bounds.first_by)
                ctype = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
                if not (ctype.startswith("audio/") or ctype in _OCTETS):
                    raise edge.error(BAD_RESPONSE, f"expected audio, got {ctype[:40]}")
                async for chunk in edge.read(bounds).over(response.data):
                    if out.total == 0 and chunk and looks_like_text(chunk, strict=mulaw):
                        raise edge.error(BAD_RESPONSE, "expected audio, got a text body")
                    audio = out.feed(chunk)
                    if audio:
                        yield audio
            rest = out.end()
            if rest:
                yield rest
