"""Deepgram prerecorded speech-to-text through the official SDK.

One request per utterance: the PCM is wrapped in a WAV and posted to ``/v1/listen``.
The SDK's own retries are off (failover happens above this adapter) and the whole
call is bounded by ``timeout`` (STT_TIMEOUT). The deadline and the error mapping are the
provider kit's (bot/providers/kit.py).

The SDK builds its request headers anew for every request, and that reads its own
version from the installed package's metadata (``importlib.metadata`` parses the
METADATA file each time): a third of the CPU of a transcription. ``_fixed_headers``
computes them once per client; auth, base URL and status errors stay the SDK's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

from bot.errors import BAD_RESPONSE
from bot.providers.kit import Edge, HttpPool
from media.wav import write_pcm16

if TYPE_CHECKING:
    from bot.settings import Settings

try:  # not re-exported at the package top level in every SDK release
    from deepgram.core.parse_error import ParsingError
except ImportError:  # pragma: no cover
    ParsingError = ValueError  # type: ignore[misc,assignment]


def _classify(e: BaseException) -> tuple[str, str] | None:
    if isinstance(e, ParsingError):
        return BAD_RESPONSE, "reply did not match the expected shape"
    return None


def environment_for(base_url: str) -> DeepgramClientEnvironment:
    """All four SDK endpoints pointed at one server (a gateway, or a fake)."""
    base = base_url.rstrip("/")
    if base.startswith("ws"):
        base = "http" + base[2:]
    ws = "ws" + base[4:]  # http -> ws, https -> wss
    return DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)


def _fixed_headers(client: AsyncDeepgramClient) -> None:
    """Make the client's per-request header builder return one precomputed set.

    The headers depend only on the API key and the SDK/platform versions, all fixed
    for the client's life. If a future SDK moves the builder, nothing changes here
    (the requests are merely slower)."""
    wrapper = getattr(client, "_client_wrapper", None)
    build = getattr(wrapper, "get_headers", None)
    if wrapper is None or not callable(build):
        return
    headers = dict(build())
    wrapper.get_headers = lambda: dict(headers)


class DeepgramSTT:
    """STT adapter for Deepgram's prerecorded API (``listen.v1.media.transcribe_file``)."""

    name = "deepgram"

    def __init__(self, *, api_key: str = "", base_url: str = "", model: str = "nova-3", timeout: float = 5.0) -> None:
        """``base_url``: a gateway or a fake (empty: Deepgram's own); ``timeout``: the whole
        request, in seconds."""
        self._api_key = api_key
        self._base_url = base_url
        self._model = model
        self._timeout = timeout
        self._edge = Edge("stt", self.name, timeout=timeout, classify=_classify)
        self._client: AsyncDeepgramClient | None = None
        base = base_url.rstrip("/") or "https://api.deepgram.com"
        self._pool = HttpPool(("http" + base[2:] if base.startswith("ws") else base) + "/", "stt")

    @classmethod
    def from_settings(cls, s: Settings) -> DeepgramSTT:
        return cls(api_key=s.deepgram_api_key, base_url=s.deepgram_base_url, model=s.deepgram_model, timeout=s.stt_timeout)

    async def start(self) -> None:
        """Create the HTTP pool and the SDK client (must run inside the event loop)."""
        if self._client is not None:
            return
        backstop = self._timeout + 1.0  # the kit's deadline is the real bound
        kwargs: dict[str, Any] = {}
        if self._base_url:
            kwargs["environment"] = environment_for(self._base_url)
        self._client = AsyncDeepgramClient(
            api_key=self._api_key, httpx_client=self._pool.open(backstop), timeout=backstop, max_retries=0, **kwargs
        )
        _fixed_headers(self._client)
        # The SDK imports its prerecorded client on first use (~0.1-1 s): at start-up,
        # not inside the first caller's turn.
        _ = self._client.listen.v1.media

    async def warm(self) -> None:
        """Open a connection to the API host now, so the first turn has one ready."""
        await self._pool.warm()

    async def close(self) -> None:
        self._client = None
        await self._pool.close()

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Transcribe mono PCM16 at ``rate`` Hz; raises ``StageError('stt', ...)``."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        wav = write_pcm16(pcm16, rate)
        self._pool.used()
        with self._edge.guard():
            result = await self._edge.bounded(self._client.listen.v1.media.transcribe_file(
                request=wav, model=self._model, smart_format=True, request_options={"max_retries": 0},
            ))
        return self._transcript(result)

    def _transcript(self, result: Any) -> str:
        try:
            transcript = result.results.channels[0].alternatives[0].transcript
        except (AttributeError, IndexError, TypeError):
            raise self._edge.error(BAD_RESPONSE, "reply has no results.channels[0].alternatives[0]") from None
        return self._edge.require_text(transcript)
