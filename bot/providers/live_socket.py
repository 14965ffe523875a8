"""The vendor-neutral machinery of a live STT socket (one call's ``STTStream``).

``send`` never blocks: audio goes to a bounded queue (oldest audio dropped and counted
if the socket is stuck). Audio since the last final result is kept in a bounded ring;
after a dropped socket it is replayed on a new one (reconnect with back-off, a fresh
budget of attempts after a healthy socket), so the turn in progress is not lost and
finalised text is not repeated. Idle sockets get keep-alives. Control messages
(finalize, close) are queued in order with the audio and re-sent after a reconnect.

Audio goes up in messages of ``chunk_bytes`` (200 ms), not one per 20 ms frame:
a send to the socket (a syscall and, for the SDK's websocket, a frame to build) is
most of what live STT costs the bot per call. The batching never delays what timing
hangs on: once the silence after the caller's voice (``send(voiced=False)``) is
``quiet_hold_bytes`` long (half the endpointing: no engine can call an endpoint on less,
and the short gaps between words stay batched) until the engine has decided (a final at
an endpoint, or an utterance end) or ``eager_bytes`` of audio later, every frame goes up
at once, so the engine's endpointing sees the silence after speech as soon as it
happens. While the caller
speaks, and in long silences, frames wait for a full chunk (interim results and the
engine's speech-start event come up to 180 ms later; the local VAD owns barge-in).

A vendor subclass writes the wire: ``_connect`` (handshake; raises ``StageError``),
``_send_item`` (audio bytes or a control name), ``_send_keepalive`` and ``_recv`` (one
message; returns the events it means); both raise ``Closed(StageError)`` when the
socket went away. It calls ``_finalised_up_to(end_s)`` when a final result settles
audio. Every failure leaves as ``StageError('stt')`` through ``Failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bot.clock import now as loop_time
from bot.errors import UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.providers.kit import Edge
from bot.providers.stt_stream import Failed, Final, Interim, Reconnected, STTEvent, UtteranceEnd

log = logging.getLogger("bot.providers.live_socket")

FINALIZE = "finalize"
CLOSE = "close"
MAX_QUEUED_EVENTS = 64  # beyond this, interims are dropped (finals never are)


@dataclass
class LiveStats:
    sent_bytes: int = 0
    dropped_bytes: int = 0  # oldest audio dropped because the socket could not keep up
    replayed_bytes: int = 0
    keepalives: int = 0
    reconnects: int = 0
    garbage: int = 0  # messages we could not read (ignored)
    vendor_errors: int = 0  # the vendor's own error messages
    dropped_interims: int = 0


@dataclass(frozen=True)
class SocketOptions:
    bytes_per_s: int = 8000  # 8 kHz mu-law
    replay_s: float = 10.0
    replay_chunk: int = 1600  # replayed audio goes up in 200 ms messages
    chunk_bytes: int = 1600  # live audio goes up in messages of 200 ms (Deepgram suggests 20-250 ms) ...
    eager_bytes: int = 9600  # ... except for 1.2 s after the caller's voice stops: at once,
    quiet_hold_bytes: int = 800  # once that silence is 100 ms long (no engine decides sooner)
    keepalive_s: float = 3.0
    reconnect_attempts: int = 3
    backoff_s: float = 0.2  # first retry waits this, doubling, at most 2 s
    timeout: float = 5.0  # one handshake; one finalize write
    close_timeout: float = 1.0  # close -> server close, then we stop waiting


class Closed(Exception):
    """Raised by ``_send_item``/``_recv`` when the socket went away: ``error`` is the
    drop as a StageError (None when we closed it on purpose)."""

    def __init__(self, error: StageError | None) -> None:
        super().__init__(error.message if error else "closed")
        self.error = error


class LiveSocketStream:
    """One call's live socket. Subclasses implement the wire (see module doc)."""

    provider = "live"

    def __init__(self, options: SocketOptions, *, call_sid: str = "", on_closed: Callable[[Any], None] | None = None) -> None:
        self._sopts = options
        self.call_sid = call_sid
        self._on_closed = on_closed
        self.edge = Edge("stt", self.provider, timeout=options.timeout)  # errors and the handshake bound
        self.stats = LiveStats()
        self.error: StageError | None = None
        self._cap = max(options.bytes_per_s, int(options.replay_s * options.bytes_per_s))
        self._pending: deque[bytes | str] = deque()  # audio and control messages to send
        self._pending_bytes = 0
        self._ring = bytearray()  # audio submitted since the last final result
        self._ring_start = 0  # global byte offset of _ring[0]
        self._conn_offset = 0  # global byte offset of the current socket's t=0
        self._wake = asyncio.Event()
        self._finalize_waiters: deque[asyncio.Future[None]] = deque()
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self._last_sent = loop_time()
        self._flush = False  # send what is pending now, whatever its size
        self._since_voice = options.eager_bytes  # audio bytes since the last voiced frame
        self._connected = False
        self._messages = 0  # readable messages on the current socket
        self._closing = False
        self._closed = False
        self._runner: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- the wire (vendor)
    async def _connect(self, stack: contextlib.AsyncExitStack) -> Any:
        raise NotImplementedError

    async def _send_item(self, sock: Any, item: bytes | str) -> None:
        raise NotImplementedError

    async def _send_keepalive(self, sock: Any) -> None:
        raise NotImplementedError

    async def _recv(self, sock: Any) -> list[STTEvent] | None:
        """One message as events ([] for a readable message that means none; None
        for one that could not be read, counted by the subclass)."""
        raise NotImplementedError

    def _error(self, code: str, message: str, retryable: bool | None = None) -> StageError:
        return self.edge.error(code, message, retryable=retryable)

    # ---------------------------------------------------------------- public API
    @property
    def connected(self) -> bool:
        return self._connected

    def send(self, mulaw: bytes, *, voiced: bool | None = None) -> None:
        """Queue caller audio. Never blocks; drops the oldest when full. ``voiced`` is the
        local VAD's verdict on it (None: unknown, sent at once): it decides whether the
        audio may wait for a fuller message (see the module doc)."""
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
        if voiced:
            self._since_voice = 0
        else:
            self._since_voice += len(mulaw)
            if voiced is None or self._sopts.quiet_hold_bytes < self._since_voice <= self._sopts.eager_bytes:
                self._flush = True
        if self._flush or self._pending_bytes >= self._sopts.chunk_bytes:
            self._wake.set()

    async def events(self) -> AsyncIterator[STTEvent]:
        """The stream's events, in order; ends after ``Failed`` or ``aclose()``."""
        while True:
            ev = await self._events.get()
            if ev is None:
                self._events.put_nowait(None)  # later calls end at once too
                return
            yield ev

    async def finalize(self) -> None:
        """Ask for a flush: a final follows for audio not yet finalised. Returns once the
        message is written (bounded by the handshake timeout); if the socket is down it
        is re-sent after reconnecting."""
        if self._closing or self.error is not None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finalize_waiters.append(fut)
        self._pending.append(FINALIZE)
        self._flush = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):  # not a failure: reconnection re-sends it
            async with asyncio.timeout(self._sopts.timeout):
                await asyncio.shield(fut)

    async def aclose(self) -> None:
        """Close politely, stop our tasks; bounded by ``close_timeout`` (plus a short
        grace for cancellation). Idempotent."""
        if self._closed:
            return
        self._closed = self._closing = True
        runner = self._runner
        if runner is not None and not runner.done():
            if self._connected:
                self._pending.append(CLOSE)
                self._flush = True
                self._wake.set()
                await asyncio.wait({runner}, timeout=self._sopts.close_timeout + 0.2)
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

    async def begin(self) -> None:
        """Connect: returns once the first handshake succeeded or failed (the factory's ``open``
        calls it once; a failure is the transcriber's ``error`` and its ``events()``' ``Failed``)."""
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name=f"{self.provider}-live:{self.call_sid}")
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
            self._fail(self._error(UPSTREAM_ERROR, f"unexpected failure ({type(e).__name__})"))
        finally:
            self._connected = False
            if not first.done():
                first.set_result(None)

    async def _connection_loop(self, first: asyncio.Future[None]) -> None:
        attempts = 0  # consecutive handshakes since the last healthy socket
        last: StageError | None = None
        while not self._closing:
            if first.done():  # a reconnection
                if attempts >= self._sopts.reconnect_attempts:
                    assert last is not None
                    self._fail(self._error(last.code, f"reconnect failed after {attempts} attempts: {last.message}", last.retryable))
                    return
                if attempts:
                    await asyncio.sleep(min(2.0, self._sopts.backoff_s * 2 ** (attempts - 1)))
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
        """One socket, from handshake to close. None when we closed it, the drop as a
        StageError when it went away; raises StageError if the handshake fails."""
        async with contextlib.AsyncExitStack() as stack:
            sock = await self._connect(stack)
            self._connected = True
            self._messages = 0
            try:
                if first.done():
                    replayed = self._prepare_replay()
                    self.stats.reconnects += 1
                    self._emit(Reconnected(attempts=attempt, replayed_ms=replayed * 1000 // self._sopts.bytes_per_s))
                else:
                    first.set_result(None)
                return await self._pump(sock)
            finally:
                self._connected = False

    async def _pump(self, sock: Any) -> StageError | None:
        reader = asyncio.create_task(self._read(sock), name="live-read")
        writer = asyncio.create_task(self._write(sock), name="live-write")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return reader.result()
            dropped = writer.result()
            if dropped is not None:
                return dropped
            # close sent: the server flushes its last results, then closes.
            await asyncio.wait({reader}, timeout=self._sopts.close_timeout)
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
        step = self._sopts.replay_chunk
        for i in range(0, len(data), step):
            self._pending.append(data[i : i + step])
        self._pending_bytes = len(data)
        self._pending.extend(controls)
        self.stats.replayed_bytes += len(data)
        self._flush = True
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

    # ---------------------------------------------------------------- writer / reader
    async def _write(self, sock: Any) -> StageError | None:
        item: bytes | str | None = None
        try:
            while True:
                if not self._pending or not (self._flush or self._pending_bytes >= self._sopts.chunk_bytes):
                    await self._idle(sock)
                    continue
                item = self._take()
                await self._send_item(sock, item)
                if self._sent(item):
                    return None
                item = None
                if not self._pending:
                    self._flush = False
        except Closed as e:
            if isinstance(item, str):
                self._pending.appendleft(item)  # re-sent after reconnecting
            return None if self._closing else e.error

    async def _idle(self, sock: Any) -> None:
        """Nothing ready to send: wait for more, or send a keep-alive when it is due."""
        self._wake.clear()
        wait = self._sopts.keepalive_s - (loop_time() - self._last_sent)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                await self._wake.wait()
        except TimeoutError:
            if self._pending:  # audio held this long: it goes up instead of a keep-alive
                self._flush = True
                return
            await self._send_keepalive(sock)
            self._last_sent = loop_time()
            self.stats.keepalives += 1

    def _sent(self, item: bytes | str) -> bool:
        """Bookkeeping for one message sent; True when it was the CLOSE (the writer ends)."""
        if isinstance(item, bytes):
            self.stats.sent_bytes += len(item)
            self._last_sent = loop_time()
        elif item == FINALIZE:
            if self._finalize_waiters:
                fut = self._finalize_waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
        elif item == CLOSE:
            return True
        return False

    def _take(self) -> bytes | str:
        """The next message: a control, or the audio at the head of the queue joined
        into one message of up to ``replay_chunk`` bytes."""
        item = self._pending.popleft()
        if isinstance(item, str):
            return item
        q, cap = self._pending, self._sopts.replay_chunk
        if q and isinstance(q[0], bytes) and len(item) + len(q[0]) <= cap:
            parts, n = [item], len(item)
            while q and isinstance(q[0], bytes) and n + len(q[0]) <= cap:
                part = q.popleft()
                parts.append(part)  # type: ignore[arg-type]
                n += len(part)
            item = b"".join(parts)
        self._pending_bytes -= len(item)
        return item

    async def _read(self, sock: Any) -> StageError | None:
        while True:
            try:
                events = await self._recv(sock)
            except Closed as e:
                return None if self._closing else e.error
            if events is None:  # unreadable, or the vendor's error message
                continue
            self._messages += 1
            for ev in events:
                if isinstance(ev, UtteranceEnd) or isinstance(ev, Final) and ev.speech_final:
                    self._since_voice = max(self._since_voice, self._sopts.eager_bytes)  # decided: batch again
                self._emit(ev)

    def _finalised_up_to(self, end_s: float) -> None:
        """The engine has settled this socket's audio up to ``end_s``: forget it."""
        cut = self._conn_offset + int(round(end_s * self._sopts.bytes_per_s)) - self._ring_start
        cut = min(max(0, cut), len(self._ring))
        if cut:
            del self._ring[:cut]
            self._ring_start += cut

    def _emit(self, ev: STTEvent) -> None:
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
