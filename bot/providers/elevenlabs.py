"""ElevenLabs streamed text-to-speech through the official SDK.

``ulaw_8000`` for the phone path (exactly what Twilio plays) or ``pcm_16000``.
``timeout`` (TTS_TIMEOUT) bounds the wait for the first audio and every gap between
chunks. A body that is not audio (a content type other than audio/* or
octet-stream, a body that starts like JSON/HTML, PCM of odd length, or audio too
short to be the text: bot/providers/tts_output.py) is ``bad_response``; no bytes at
all is ``empty_result``. Every failure leaves as ``StageError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TypeVar

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from bot.errors import BAD_RESPONSE, EMPTY_RESULT, TIMEOUT, UPSTREAM_ERROR, StageError, code_for_status
from bot.providers.tts_output import Plausible
from bot.providers.warm import PoolWarmer, http_client
from bot.stall import Stall

if TYPE_CHECKING:
    from bot.settings import Settings

T = TypeVar("T")

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
        self._http: httpx.AsyncClient | None = None
        self._client: AsyncElevenLabs | None = None
        self._warmer = PoolWarmer((base_url.rstrip("/") or "https://api.elevenlabs.io") + "/")

    @classmethod
    def from_settings(cls, s: Settings) -> ElevenLabsTTS:
        return cls(
            api_key=s.elevenlabs_api_key, base_url=s.elevenlabs_base_url, voice_id=s.elevenlabs_voice_id,
            model=s.elevenlabs_model, timeout=s.tts_timeout,
        )

    async def start(self) -> None:
        if self._client is not None:
            return
        backstop = self._timeout + 1.0  # asyncio timeouts below are the real bound
        self._http = http_client(backstop, follow_redirects=True)
        self._client = AsyncElevenLabs(
            api_key=self._api_key,
            base_url=self._base_url or None,
            timeout=backstop,
            httpx_client=self._http,
        )

    async def warm(self) -> None:
        """Open a connection to the API host now, so the first sentence has one ready."""
        await self._warmer.warm(self._http, "tts")

    async def close(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        """Stream raw 8 kHz mu-law (``mulaw``) or PCM16 at ``pcm_rate``."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        fmt = "ulaw_8000" if mulaw else f"pcm_{self.pcm_rate}"
        self._warmer.used()
        stall = Stall(deadline, self._timeout)
        try:
            async with AsyncExitStack() as stack:
                opening = stack.enter_async_context(
                    self._client.text_to_speech.with_raw_response.stream(
                        self._voice_id,
                        text=text,
                        model_id=self._model,
                        output_format=fmt,
                        optimize_streaming_latency=3,
                        # None = hand chunks on as they arrive (the SDK re-chunks to 1 KiB)
                        request_options={"chunk_size": None},
                    )
                )
                response = await self._bounded(opening, deadline, "no reply")
                ctype = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
                if not (ctype.startswith("audio/") or ctype in _OCTETS):
                    raise self._error(BAD_RESPONSE, f"expected audio, got {ctype[:40]}")
                total, carry = 0, b""
                check = Plausible(text, 8 if mulaw else self.pcm_rate * 2 / 1000)
                await stack.enter_async_context(stall)
                async for chunk in response.data:
                    if not chunk:
                        continue
                    stall.tick()
                    if total == 0 and _looks_like_text(chunk, strict=mulaw):
                        raise self._error(BAD_RESPONSE, "expected audio, got a text body")
                    total += len(chunk)
                    if not mulaw:  # keep PCM16 chunks sample-aligned
                        chunk, carry = _aligned(carry + chunk)
                        if not chunk:
                            continue
                    chunk = check.feed(chunk)
                    if chunk:
                        stall.hold()
                        yield chunk
                        stall.resume()
            if total == 0:
                raise self._error(EMPTY_RESULT, "no audio returned")
            if carry:
                raise self._error(BAD_RESPONSE, "PCM16 audio of odd length")
            rest = check.end()
            if rest is None:
                raise self._error(BAD_RESPONSE, f"{check.total} bytes of audio cannot be the text")
            if rest:
                yield rest
        except StageError:
            raise
        except TimeoutError:
            if not stall.expired():
                raise self._map(TimeoutError()) from None
            what = "audio stream stalled" if stall.started else "no audio"
            raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise self._map(e) from None

    async def _bounded(self, aw: Awaitable[T], deadline: float, what: str) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await aw
        except TimeoutError:
            raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None

    def _map(self, e: Exception) -> StageError:
        if isinstance(e, (TimeoutError, httpx.TimeoutException)):
            return self._error(TIMEOUT, "the HTTP client timed out")
        if isinstance(e, ApiError):
            status = e.status_code
            if status is None:
                return self._error(UPSTREAM_ERROR, "request failed without an HTTP status")
            if 200 <= status < 300:
                return self._error(BAD_RESPONSE, f"HTTP {status} with an undecodable body")
            return self._error(code_for_status(status), f"HTTP {status}")
        if isinstance(e, httpx.HTTPError):
            return self._error(UPSTREAM_ERROR, f"connection failed ({type(e).__name__})")
        if isinstance(e, (ValueError, TypeError, AttributeError, KeyError)):
            return self._error(BAD_RESPONSE, f"unreadable reply ({type(e).__name__})")
        return self._error(UPSTREAM_ERROR, f"unexpected failure ({type(e).__name__})")

    def _error(self, code: str, message: str) -> StageError:
        return StageError("tts", code, message, provider=self.name)


def _looks_like_text(chunk: bytes, *, strict: bool) -> bool:
    """A body that is a web page or JSON served with an audio content type.

    For PCM one leading ``{`` or ``<`` is enough (real PCM starts near zero); raw mu-law
    can hold any byte, so there only a recognisable document opening counts.
    """
    head = chunk[:16].lstrip().lower()
    if head.startswith((b"<html", b"<!doctype", b"<?xml", b'{"')):
        return True
    return not strict and chunk[:1] in (b"{", b"<")


def _aligned(data: bytes) -> tuple[bytes, bytes]:
    """Split ``data`` into a whole number of 16-bit samples and the leftover byte."""
    cut = len(data) & ~1
    return data[:cut], data[cut:]
