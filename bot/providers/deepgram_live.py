"""Deepgram live (streaming) speech-to-text through the official SDK.

One ``DeepgramLive`` per app; one ``LiveTranscriber`` per call, opened when the media
stream starts. The caller's 8 kHz mu-law goes up the socket as it arrives (no
transcoding); Deepgram's messages come back as typed events:

- ``SpeechStarted``: Deepgram's VAD heard speech begin (barge-in hint).
- ``Interim(text)``: a running guess for the words since the last final; may change.
- ``Final(text, speech_final, from_finalize)``: settled text. ``speech_final`` means
  Deepgram's endpointing saw the speaker pause; ``from_finalize`` answers ``finalize()``.
- ``UtteranceEnd``: no new word for ``utterance_end_ms`` (works in noise, where
  endpointing may never fire).
- ``Reconnected``: the socket dropped and was re-opened; unfinalised audio was replayed.
- ``Failed(StageError)``: the stream is dead; nothing follows.

Resilience: ``send`` never blocks (bounded queue, oldest audio dropped and counted if
the socket is stuck). Audio since the last final result is kept in a bounded ring;
after a dropped socket it is replayed on a new one, so the turn in progress is not
lost and finalised text is not repeated. Every failure leaves as ``StageError('stt')``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Union

import httpx
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.exceptions import ConnectionClosed, WebSocketException

from bot.errors import AUTH, BAD_REQUEST, TIMEOUT, UPSTREAM_ERROR, StageError, code_for_status
from bot.logs import kv
from bot.providers.deepgram import environment_for

log = logging.getLogger("bot.providers.deepgram_live")

BYTES_PER_S = 8000  # 8 kHz mu-law, one byte per sample
REPLAY_CHUNK = 1600  # replayed audio goes up in 200 ms messages
MAX_QUEUED_EVENTS = 64  # beyond this, interims are dropped (finals never are)
_FINALIZE = "Finalize"
_CLOSE = "CloseStream"


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Interim:
    text: str


@dataclass(frozen=True)
class Final:
    text: str
    speech_final: bool
    from_finalize: bool = False


@dataclass(frozen=True)
class UtteranceEnd:
    last_word_end: float | None = None


@dataclass(frozen=True)
class SpeechStarted:
    timestamp: float | None = None


@dataclass(frozen=True)
class Reconnected:
    attempts: int  # handshakes it took
    replayed_ms: int  # unfinalised audio sent again


@dataclass(frozen=True)
class Failed:
    error: StageError


LiveEvent = Union[Interim, Final, UtteranceEnd, SpeechStarted, Reconnected, Failed]


@dataclass
class LiveStats:
    sent_bytes: int = 0
    dropped_bytes: int = 0  # oldest audio dropped because the socket could not keep up
    replayed_bytes: int = 0
    keepalives: int = 0
    reconnects: int = 0
    garbage: int = 0  # messages we could not read (ignored)
    vendor_errors: int = 0  # Deepgram "Error" messages
    dropped_interims: int = 0


@dataclass(frozen=True)
class LiveOptions:
    """Resolved once from settings (optional attributes fall back to defaults)."""

    model: str = "nova-3"
    endpointing_ms: int = 300
    utterance_end_ms: int = 1000  # Deepgram's minimum
    keepalive_s: float = 3.0
    replay_s: float = 10.0
    reconnect_attempts: int = 3
    backoff_s: float = 0.2  # first retry waits this, doubling, at most 2 s
    timeout: float = 5.0  # one handshake
    close_timeout: float = 1.0  # CloseStream -> server close, then we stop waiting

    @classmethod
    def from_settings(cls, s: Any) -> "LiveOptions":
        g = lambda name, default: getattr(s, name, default)  # noqa: E731
        return cls(
            model=g("deepgram_model", cls.model) or cls.model,
            endpointing_ms=int(g("deepgram_endpointing_ms", cls.endpointing_ms)),
            utterance_end_ms=max(1000, int(g("deepgram_utterance_end_ms", cls.utterance_end_ms))),
            keepalive_s=float(g("deepgram_keepalive_s", cls.keepalive_s)),
            replay_s=float(g("deepgram_replay_s", cls.replay_s)),
            reconnect_attempts=int(g("deepgram_reconnect_attempts", cls.reconnect_attempts)),
            backoff_s=float(g("deepgram_reconnect_backoff_s", cls.backoff_s)),
            timeout=float(g("stt_timeout", cls.timeout)),
            close_timeout=float(g("deepgram_close_timeout_s", cls.close_timeout)),
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


def _error(code: str, message: str, retryable: bool | None = None) -> StageError:
    return StageError("stt", code, message, retryable=retryable, provider=DeepgramLive.name)


# ------------------------------------------------------------------ the app-wide adapter


class DeepgramLive:
    """Opens one live transcription socket per call."""

    name = "deepgram"

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self.options = LiveOptions.from_settings(settings)
        self._http: httpx.AsyncClient | None = None
        self._client: AsyncDeepgramClient | None = None
        self._open: set[LiveTranscriber] = set()

    async def start(self) -> None:
        """Create the SDK client (inside the event loop). Idempotent."""
        if self._client is not None:
            return
        s = self._settings
        kwargs: dict[str, Any] = {}
        base_url = getattr(s, "deepgram_base_url", "")
        if base_url:
            kwargs["environment"] = environment_for(base_url)
        # The live socket does not use HTTP, but the SDK client wants a pool: own it.
        self._http = httpx.AsyncClient(timeout=self.options.timeout + 1.0)
        self._client = AsyncDeepgramClient(
            api_key=s.deepgram_api_key, httpx_client=self._http, max_retries=0, **kwargs
        )

    async def close(self) -> None:
        """Close every transcriber still open, then the client."""
        for t in list(self._open):
            await t.aclose()
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def open(self, *, call_sid: str = "") -> "LiveTranscriber":
        """Open a socket for one call; returns once the handshake succeeded or failed
        (at most ``stt_timeout``). A failed handshake does not raise: the transcriber's
        ``error`` is set and ``events()`` yields ``Failed`` at once."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        t = LiveTranscriber(self._client, self.options, call_sid=call_sid, on_closed=self._open.discard)
        self._open.add(t)
        await t._begin()
        return t


# ------------------------------------------------------------------ one call's stream


class LiveTranscriber:
    """One call's live socket: ``send`` audio in, ``events()`` out. See module doc."""

    def __init__(
        self,
        client: AsyncDeepgramClient,
        options: LiveOptions,
        *,
        call_sid: str = "",
        on_closed: Callable[["LiveTranscriber"], None] | None = None,
    ) -> None:
        self._client = client
        self._opts = options
        self.call_sid = call_sid
        self._on_closed = on_closed
        self.stats = LiveStats()
        self.error: StageError | None = None

        self._cap = max(BYTES_PER_S, int(options.replay_s * BYTES_PER_S))
        self._pending: deque[bytes | str] = deque()  # audio and control messages to send
        self._pending_bytes = 0
        self._ring = bytearray()  # audio submitted since the last final result
        self._ring_start = 0  # global byte offset of _ring[0]
        self._conn_offset = 0  # global byte offset of the current socket's t=0
        self._wake = asyncio.Event()
        self._finalize_waiters: deque[asyncio.Future[None]] = deque()
        self._events: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        self._last_sent = time.monotonic()
        self._connected = False
        self._messages = 0  # readable messages on the current socket
        self._closing = False
        self._closed = False
        self._runner: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- public API

    @property
    def connected(self) -> bool:
        return self._connected

    def send(self, mulaw: bytes) -> None:
        """Queue caller audio (8 kHz mu-law). Never blocks; drops the oldest when full."""
        if not mulaw or self._closing or self.error is not None:
            return
        self._ring += mulaw
        over = len(self._ring) - self._cap
        if over > 0:
            del self._ring[:over]
            self._ring_start += over
        self._pending.append(bytes(mulaw))
        self._pending_bytes += len(mulaw)
        while self._pending_bytes > self._cap:
            self._drop_oldest_audio()
        self._wake.set()

    async def events(self) -> AsyncIterator[LiveEvent]:
        """The stream's events, in order; ends after ``Failed`` or ``aclose()``.
        One consumer only."""
        while True:
            ev = await self._events.get()
            if ev is None:
                self._events.put_nowait(None)  # later calls end at once too
                return
            yield ev

    async def finalize(self) -> None:
        """Ask Deepgram to flush: a ``Final(from_finalize=True)`` follows for audio not yet
        finalised. Returns once the message is written (bounded by ``stt_timeout``);
        if the socket is down it is re-sent after reconnecting."""
        if self._closing or self.error is not None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finalize_waiters.append(fut)
        self._pending.append(_FINALIZE)
        self._wake.set()
        with contextlib.suppress(TimeoutError):  # not a failure: reconnection re-sends it
            async with asyncio.timeout(self._opts.timeout):
                await asyncio.shield(fut)

    async def aclose(self) -> None:
        """CloseStream, close the socket, stop our tasks; bounded by ``close_timeout``
        (plus a short grace for cancellation). Idempotent."""
        if self._closed:
            return
        self._closed = self._closing = True
        runner = self._runner
        if runner is not None and not runner.done():
            if self._connected:
                self._pending.append(_CLOSE)
                self._wake.set()
                await asyncio.wait({runner}, timeout=self._opts.close_timeout + 0.2)
            if not runner.done():
                runner.cancel()
                await asyncio.wait({runner}, timeout=1.0)
            if not runner.done():  # pragma: no cover - would be a bug in the SDK
                log.warning("live stt task did not stop", extra=kv(call_sid=self.call_sid))
        for fut in self._finalize_waiters:
            if not fut.done():
                fut.set_result(None)
        self._finalize_waiters.clear()
        self._events.put_nowait(None)
        if self._on_closed is not None:
            self._on_closed(self)

    # ---------------------------------------------------------------- start-up

    async def _begin(self) -> None:
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name=f"deepgram-live:{self.call_sid}")
        try:
            await asyncio.wait({first, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self.aclose()
            raise

    # ---------------------------------------------------------------- connection loop

    async def _run(self, first: asyncio.Future[None]) -> None:
        try:
            await self._connection_loop(first)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug here must still end as Failed
            log.exception("live stt loop crashed", extra=kv(call_sid=self.call_sid))
            self._fail(_error(UPSTREAM_ERROR, f"unexpected failure ({type(e).__name__})"))
        finally:
            self._connected = False
            if not first.done():
                first.set_result(None)

    async def _connection_loop(self, first: asyncio.Future[None]) -> None:
        attempts = 0  # consecutive handshakes since the last healthy socket
        last: StageError | None = None
        while not self._closing:
            if first.done():  # a reconnection
                if attempts >= self._opts.reconnect_attempts:
                    assert last is not None
                    self._fail(_error(last.code, f"reconnect failed after {attempts} attempts: {last.message}", last.retryable))
                    return
                if attempts:
                    await asyncio.sleep(min(2.0, self._opts.backoff_s * 2 ** (attempts - 1)))
            attempts += 1
            try:
                dropped = await self._session(first, attempts)
            except StageError as e:
                if not first.done():  # the first handshake gets one attempt: fail over fast
                    self._fail(e)
                    first.set_result(None)
                    return
                if not e.retryable:
                    self._fail(e)
                    return
                log.info("live stt reconnect failed", extra=kv(call_sid=self.call_sid, attempt=attempts, code=e.code))
                last = e
                continue
            if dropped is None:  # closed on purpose
                return
            log.warning("live stt socket dropped", extra=kv(call_sid=self.call_sid, code=dropped.code, reason=dropped.message))
            if not dropped.retryable:
                self._fail(dropped)
                return
            if self._messages:  # the socket was healthy: a fresh budget of attempts
                attempts = 0
            last = dropped

    async def _session(self, first: asyncio.Future[None], attempt: int) -> StageError | None:
        """One socket, from handshake to close. Returns None when we closed it, the
        drop as a StageError when it went away, raises StageError if the handshake fails."""
        async with contextlib.AsyncExitStack() as stack:
            sock = await self._handshake(stack)
            self._connected = True
            self._messages = 0
            try:
                if first.done():
                    replayed = self._prepare_replay()
                    self.stats.reconnects += 1
                    self._emit(Reconnected(attempts=attempt, replayed_ms=replayed * 1000 // BYTES_PER_S))
                else:
                    first.set_result(None)
                return await self._pump(sock)
            finally:
                self._connected = False

    async def _handshake(self, stack: contextlib.AsyncExitStack) -> Any:
        t = self._opts.timeout
        try:
            async with asyncio.timeout(t):
                sock = await stack.enter_async_context(self._client.listen.v1.connect(**self._opts.query()))
        except TimeoutError:
            raise _error(TIMEOUT, f"no websocket handshake within {t:g} s") from None
        except ApiError as e:
            status = e.status_code
            if status is None:
                raise _error(UPSTREAM_ERROR, "handshake refused without an HTTP status") from None
            raise _error(code_for_status(status), f"handshake refused with HTTP {status}") from None
        except (OSError, WebSocketException, EOFError) as e:
            raise _error(UPSTREAM_ERROR, f"connection failed ({type(e).__name__})") from None
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise _error(UPSTREAM_ERROR, f"unexpected handshake failure ({type(e).__name__})") from None
        # The SDK gives no way to set websockets' close timeout (10 s): bound our closes.
        ws = getattr(sock, "_websocket", None)
        if ws is not None and hasattr(ws, "close_timeout"):
            ws.close_timeout = self._opts.close_timeout
        return sock

    async def _pump(self, sock: Any) -> StageError | None:
        reader = asyncio.create_task(self._read(sock), name="deepgram-live-read")
        writer = asyncio.create_task(self._write(sock), name="deepgram-live-write")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return reader.result()
            dropped = writer.result()
            if dropped is not None:
                return dropped
            # CloseStream sent: Deepgram flushes its last results, then closes.
            await asyncio.wait({reader}, timeout=self._opts.close_timeout)
            return reader.result() if reader.done() else None
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    def _prepare_replay(self) -> int:
        """After a reconnect: queue the unfinalised audio again, then any controls."""
        controls = [x for x in self._pending if isinstance(x, str)]
        self._pending.clear()
        data = bytes(self._ring)
        self._conn_offset = self._ring_start
        for i in range(0, len(data), REPLAY_CHUNK):
            self._pending.append(data[i : i + REPLAY_CHUNK])
        self._pending_bytes = len(data)
        self._pending.extend(controls)
        self.stats.replayed_bytes += len(data)
        self._wake.set()
        return len(data)

    def _drop_oldest_audio(self) -> None:
        for i, item in enumerate(self._pending):
            if isinstance(item, bytes):
                del self._pending[i]
                self._pending_bytes -= len(item)
                self.stats.dropped_bytes += len(item)
                # These bytes will never reach this socket: shift its time origin.
                self._conn_offset += len(item)
                return
        self._pending_bytes = 0  # pragma: no cover - only controls left

    # ---------------------------------------------------------------- writer

    async def _write(self, sock: Any) -> StageError | None:
        item: bytes | str | None = None
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    wait = self._opts.keepalive_s - (time.monotonic() - self._last_sent)
                    try:
                        async with asyncio.timeout(max(0.0, wait)):
                            await self._wake.wait()
                    except TimeoutError:
                        await sock.send_keep_alive()
                        self._last_sent = time.monotonic()
                        self.stats.keepalives += 1
                    continue
                item = self._pending.popleft()
                if isinstance(item, bytes):
                    self._pending_bytes -= len(item)
                    await sock.send_media(item)
                    self.stats.sent_bytes += len(item)
                    self._last_sent = time.monotonic()
                elif item == _FINALIZE:
                    await sock.send_finalize()
                    if self._finalize_waiters:
                        fut = self._finalize_waiters.popleft()
                        if not fut.done():
                            fut.set_result(None)
                elif item == _CLOSE:
                    await sock.send_close_stream()
                    return None
                item = None
        except ConnectionClosed as e:
            if isinstance(item, str):
                self._pending.appendleft(item)  # re-sent after reconnecting
            return None if self._closing else _drop_error(e)
        except (OSError, WebSocketException) as e:
            if isinstance(item, str):
                self._pending.appendleft(item)
            return _error(UPSTREAM_ERROR, f"send failed ({type(e).__name__})")

    # ---------------------------------------------------------------- reader

    async def _read(self, sock: Any) -> StageError | None:
        while True:
            try:
                msg = await sock.recv()
            except ConnectionClosed as e:
                return None if self._closing else _drop_error(e)
            except ValueError:  # not JSON
                self.stats.garbage += 1
                continue
            except (OSError, WebSocketException) as e:
                return _error(UPSTREAM_ERROR, f"receive failed ({type(e).__name__})")
            self._handle(msg)

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, ListenV1Results):
            self._on_results(msg)
        elif isinstance(msg, ListenV1UtteranceEnd):
            self._messages += 1
            self._emit(UtteranceEnd(_float_or_none(getattr(msg, "last_word_end", None))))
        elif isinstance(msg, ListenV1SpeechStarted):
            self._messages += 1
            self._emit(SpeechStarted(_float_or_none(getattr(msg, "timestamp", None))))
        elif isinstance(msg, ListenV1Metadata):
            self._messages += 1
            log.debug("live stt metadata", extra=kv(call_sid=self.call_sid, request_id=getattr(msg, "request_id", None)))
        elif isinstance(msg, ListenV1Error):
            self.stats.vendor_errors += 1
            log.warning("deepgram error message", extra=kv(call_sid=self.call_sid, variant=getattr(msg, "variant", None)))
        else:  # bytes, an unknown type, a shape the SDK could not read
            self.stats.garbage += 1

    def _on_results(self, msg: ListenV1Results) -> None:
        try:
            text = msg.channel.alternatives[0].transcript
            if not isinstance(text, str):
                raise TypeError("transcript")
            is_final = bool(msg.is_final)
            speech_final = bool(msg.speech_final)
            end = float(msg.start) + float(msg.duration)
        except (AttributeError, IndexError, TypeError, ValueError):
            self.stats.garbage += 1
            return
        self._messages += 1
        text = text.strip()
        if not is_final:
            if text:
                self._emit(Interim(text))
            return
        self._finalised_up_to(end)
        if text or speech_final:
            self._emit(Final(text, speech_final, bool(getattr(msg, "from_finalize", False))))

    def _finalised_up_to(self, end_s: float) -> None:
        """Deepgram has settled this socket's audio up to ``end_s``: forget it."""
        cut = self._conn_offset + int(round(end_s * BYTES_PER_S)) - self._ring_start
        cut = min(max(0, cut), len(self._ring))
        if cut:
            del self._ring[:cut]
            self._ring_start += cut

    # ---------------------------------------------------------------- events

    def _emit(self, ev: LiveEvent) -> None:
        if isinstance(ev, Interim) and self._events.qsize() >= MAX_QUEUED_EVENTS:
            self.stats.dropped_interims += 1
            return
        self._events.put_nowait(ev)

    def _fail(self, err: StageError) -> None:
        if self.error is not None:
            return
        self.error = err
        log.warning("live stt failed", extra=kv(call_sid=self.call_sid, code=err.code, retryable=err.retryable))
        self._events.put_nowait(Failed(err))
        self._events.put_nowait(None)


def _drop_error(e: ConnectionClosed) -> StageError:
    code = e.rcvd.code if e.rcvd is not None else 1006
    if code == 1008:  # Deepgram: the audio could not be decoded; a new socket will not help
        return _error(BAD_REQUEST, "Deepgram closed the stream: unreadable audio (1008)", retryable=False)
    if code in (4001, 4003):  # pragma: no cover - auth revoked mid-stream
        return _error(AUTH, f"Deepgram closed the stream ({code})")
    return _error(UPSTREAM_ERROR, f"socket closed unexpectedly ({code})")


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


__all__ = [
    "DeepgramLive",
    "Failed",
    "Final",
    "Interim",
    "LiveEvent",
    "LiveOptions",
    "LiveStats",
    "LiveTranscriber",
    "Reconnected",
    "SpeechStarted",
    "UtteranceEnd",
]
