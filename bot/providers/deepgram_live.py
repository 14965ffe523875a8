"""Deepgram live (streaming) speech-to-text through the official SDK: the wire only.

One ``DeepgramLive`` per app (a ``StreamingSTT``); one ``LiveTranscriber`` per call
(an ``STTStream``), opened when the media stream starts. The caller's 8 kHz mu-law
goes up the socket as it arrives (no transcoding); Deepgram's messages are mapped onto
the contract's events (``bot.providers.stt_stream``): ``Results`` -> ``Interim`` /
``Final`` (``speech_final``, ``from_finalize``), ``UtteranceEnd``, ``SpeechStarted``.
Queueing, the replay ring, reconnects and keep-alives are ``bot.providers.live_socket``'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from deepgram import AsyncDeepgramClient
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.exceptions import ConnectionClosed, WebSocketException

from bot.errors import AUTH, BAD_REQUEST, UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.providers.deepgram import environment_for
from bot.providers.kit import Edge
from bot.providers.live_socket import CLOSE, FINALIZE, Closed, LiveSocketStream, LiveStats, SocketOptions
from bot.providers.stt_stream import Final, Interim, SpeechStarted, STTEvent, UtteranceEnd

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.providers.deepgram_live")

BYTES_PER_S = 8000  # 8 kHz mu-law, one byte per sample


@dataclass(frozen=True)
class LiveOptions:
    """One call's stream options; ``DeepgramLive.from_settings`` fills the model, the
    endpointing, the utterance end, the backoff and the timeout. The socket's finer knobs
    (keep-alive, replay, attempts, close wait) are not settings: their defaults hold, and
    tests pass their own options."""

    model: str = "nova-3"
    endpointing_ms: int = 200
    utterance_end_ms: int = 1000  # Deepgram's minimum
    keepalive_s: float = 3.0
    replay_s: float = 10.0
    reconnect_attempts: int = 3
    backoff_s: float = 0.2  # first retry waits this, doubling, at most 2 s
    timeout: float = 5.0  # one handshake
    close_timeout: float = 1.0  # CloseStream -> server close, then we stop waiting

    def socket(self) -> SocketOptions:
        return SocketOptions(
            bytes_per_s=BYTES_PER_S, replay_s=self.replay_s, keepalive_s=self.keepalive_s,
            reconnect_attempts=self.reconnect_attempts, backoff_s=self.backoff_s,
            timeout=self.timeout, close_timeout=self.close_timeout,
            # the silence after the voice goes up frame by frame for as long as Deepgram
            # may still be deciding: its endpointing, then its utterance end
            eager_bytes=(max(self.endpointing_ms, self.utterance_end_ms) + 200) * BYTES_PER_S // 1000,
            # ... from half its endpointing on: a silence that short cannot end the turn yet
            quiet_hold_bytes=self.endpointing_ms // 2 * BYTES_PER_S // 1000,
        )

    def query(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "interim_results": "true",
            "endpointing": self.endpointing_ms,
            "utterance_end_ms": self.utterance_end_ms,
            "vad_events": "true",
            "smart_format": "true",
        }


# ------------------------------------------------------------------ the app-wide adapter


class DeepgramLive:
    """Opens one live transcription socket per call."""

    name = "deepgram"

    def __init__(self, *, api_key: str = "", base_url: str = "", options: LiveOptions | None = None) -> None:
        """``base_url``: a gateway or a fake (empty: Deepgram's own); ``options``: every
        call's stream (default ``LiveOptions()``)."""
        self._api_key = api_key
        self._base_url = base_url
        self.options = options or LiveOptions()
        self._http: httpx.AsyncClient | None = None
        self._client: AsyncDeepgramClient | None = None
        self._open: set[LiveTranscriber] = set()

    @classmethod
    def configured(cls, s: Settings) -> bool:
        return bool(s.deepgram_api_key)

    @classmethod
    def from_settings(cls, s: Settings) -> DeepgramLive:
        options = LiveOptions(
            model=s.deepgram_model or LiveOptions.model,
            endpointing_ms=s.deepgram_endpointing_ms,
            utterance_end_ms=max(1000, s.deepgram_utterance_end_ms),
            backoff_s=s.deepgram_reconnect_backoff_s,
            timeout=s.stt_timeout,
        )
        return cls(api_key=s.deepgram_api_key, base_url=s.deepgram_base_url, options=options)

    async def start(self) -> None:
        """Create the SDK client (inside the event loop). Idempotent."""
        if self._client is not None:
            return
        kwargs: dict[str, Any] = {}
        if self._base_url:
            kwargs["environment"] = environment_for(self._base_url)
        # The live socket does not use HTTP, but the SDK client wants a pool: own it.
        self._http = httpx.AsyncClient(timeout=self.options.timeout + 1.0)
        self._client = AsyncDeepgramClient(
            api_key=self._api_key, httpx_client=self._http, max_retries=0, **kwargs
        )
        # The SDK imports its socket client and websockets on first use (~0.4-1 s): at
        # start-up, not inside the first call's handshake timeout.
        _ = self._client.listen.v1

    async def close(self) -> None:
        """Close every transcriber still open, then the client."""
        for t in list(self._open):
            await t.aclose()
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def open(self, *, call_sid: str = "") -> LiveTranscriber:
        """Open a socket for one call; returns once the handshake succeeded or failed
        (at most ``options.timeout``). A failed handshake does not raise: the transcriber's
        ``error`` is set and ``events()`` yields ``Failed`` at once."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        t = LiveTranscriber(self._client, self.options, call_sid=call_sid, on_closed=self._open.discard)
        self._open.add(t)
        await t.begin()
        return t


# ------------------------------------------------------------------ one call's stream


class LiveTranscriber(LiveSocketStream):
    """One call's Deepgram socket: the handshake and the messages both ways."""

    provider = "deepgram"

    def __init__(
        self,
        client: AsyncDeepgramClient,
        options: LiveOptions,
        *,
        call_sid: str = "",
        on_closed: Callable[[LiveTranscriber], None] | None = None,
    ) -> None:
        super().__init__(options.socket(), call_sid=call_sid, on_closed=on_closed)
        self.edge = Edge("stt", self.provider, timeout=options.timeout, classify=_classify)
        self._client = client
        self._opts = options

    async def _connect(self, stack: contextlib.AsyncExitStack) -> Any:
        with self.edge.guard():  # a refused handshake maps by its HTTP status, like a request
            opening = stack.enter_async_context(self._client.listen.v1.connect(**self._opts.query()))
            sock = await self.edge.bounded(opening, what="no websocket handshake")
        # The SDK gives no way to set websockets' close timeout (10 s): bound our closes.
        ws = getattr(sock, "_websocket", None)
        if ws is not None and hasattr(ws, "close_timeout"):
            ws.close_timeout = self._opts.close_timeout
        return sock

    async def _send_item(self, sock: Any, item: bytes | str) -> None:
        try:
            if isinstance(item, bytes):
                await sock.send_media(item)
            elif item == FINALIZE:
                await sock.send_finalize()
            elif item == CLOSE:
                await sock.send_close_stream()
        except ConnectionClosed as e:
            raise Closed(self._drop_error(e)) from None
        except (OSError, WebSocketException) as e:
            raise Closed(self._error(UPSTREAM_ERROR, f"send failed ({type(e).__name__})")) from None

    async def _send_keepalive(self, sock: Any) -> None:
        try:
            await sock.send_keep_alive()
        except ConnectionClosed as e:
            raise Closed(self._drop_error(e)) from None
        except (OSError, WebSocketException) as e:
            raise Closed(self._error(UPSTREAM_ERROR, f"send failed ({type(e).__name__})")) from None

    async def _recv(self, sock: Any) -> list[STTEvent] | None:
        try:
            msg = await sock.recv()
        except ConnectionClosed as e:
            raise Closed(self._drop_error(e)) from None
        except ValueError:  # not JSON
            self.stats.garbage += 1
            return None
        except (OSError, WebSocketException) as e:
            raise Closed(self._error(UPSTREAM_ERROR, f"receive failed ({type(e).__name__})")) from None
        # The SDK builds these models unvalidated (construct_type): a field the server left
        # out is absent, so optional fields are read with getattr and a default.
        if isinstance(msg, ListenV1Results):
            return self._on_results(msg)
        if isinstance(msg, ListenV1UtteranceEnd):
            return [UtteranceEnd(_float_or_none(getattr(msg, "last_word_end", None)))]
        if isinstance(msg, ListenV1SpeechStarted):
            return [SpeechStarted(_float_or_none(getattr(msg, "timestamp", None)))]
        if isinstance(msg, ListenV1Metadata):
            log.debug("live stt metadata", extra=kv(call_sid=self.call_sid, request_id=getattr(msg, "request_id", None)))
            return []
        if isinstance(msg, ListenV1Error):
            self.stats.vendor_errors += 1
            log.warning("deepgram error message", extra=kv(call_sid=self.call_sid, variant=getattr(msg, "variant", None)))
            return None
        self.stats.garbage += 1  # bytes, an unknown type, a shape the SDK could not read
        return None

    def _on_results(self, msg: ListenV1Results) -> list[STTEvent] | None:
        try:
            text = msg.channel.alternatives[0].transcript
            if not isinstance(text, str):
                raise TypeError("transcript")
            is_final = bool(msg.is_final)
            speech_final = bool(msg.speech_final)
            end = float(msg.start) + float(msg.duration)
        except (AttributeError, IndexError, TypeError, ValueError):
            self.stats.garbage += 1
            return None
        text = text.strip()
        if not is_final:
            return [Interim(text)] if text else []
        self._finalised_up_to(end)
        if text or speech_final:
            return [Final(text, speech_final, bool(getattr(msg, "from_finalize", False)))]
        return []

    def _drop_error(self, e: ConnectionClosed) -> StageError:
        code = e.rcvd.code if e.rcvd is not None else 1006
        if code == 1008:  # Deepgram: the audio could not be decoded; a new socket will not help
            return self._error(BAD_REQUEST, "Deepgram closed the stream: unreadable audio (1008)", retryable=False)
        if code in (4001, 4003):  # pragma: no cover - auth revoked mid-stream
            return self._error(AUTH, f"Deepgram closed the stream ({code})")
        return self._error(UPSTREAM_ERROR, f"socket closed unexpectedly ({code})")


def _classify(e: BaseException) -> tuple[str, str] | None:
    if isinstance(e, WebSocketException | EOFError):
        return UPSTREAM_ERROR, f"connection failed ({type(e).__name__})"
    return None


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


__all__ = ["DeepgramLive", "LiveOptions", "LiveStats", "LiveTranscriber"]
