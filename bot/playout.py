"""Outbound audio for one call: 20 ms mu-law frames paced on a media clock.

The writer stays only ``lead_ms`` ahead of real time, so Twilio's buffer holds
little and a ``clear`` really stops the bot. Marks are queued between frames and
sent when the writer reaches them; Twilio echoes each once the caller has heard
the audio before it.

Every call's writer in a process waits on one shared ``Ticker`` (a 5 ms grid) rather
than a timer of its own: at N calls that is one timer and at most 200 loop wake-ups a
second instead of 50 N. A frame goes out on the first tick at or after its due time
minus ``lead_ms``: never more than ``lead_ms`` ahead, at most one tick less.
``frames_per_message`` > 1 sends that many frames as one media message (Twilio plays a
message of any size in order), with one wake-up per message.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from media.frames import FRAME_BYTES, FRAME_MS, Framer

FRAME_S = FRAME_MS / 1000
TICK_S = 0.005


class Ticker:
    """Wakes waiters on a shared grid of ``period`` seconds of the loop's clock: tick k
    is at ``k * period``. One timer handle, set for the earliest tick anyone waits on."""

    def __init__(self, period: float = TICK_S) -> None:
        self.period = period
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # the tick the timer is set for
        self.fired = 0  # timer wake-ups (for benchmarks and tests)

    def tick_at_or_after(self, t: float) -> int:
        return math.ceil(t / self.period)

    def wait(self, k: int) -> asyncio.Future[None] | None:
        """A future done at tick ``k``; None if that tick has passed. Each waiter has its
        own future, so cancelling one writer never touches another."""
        loop = asyncio.get_running_loop()
        if k * self.period <= loop.time():
            return None
        fut = loop.create_future()
        at = self._waiters.get(k)
        if at is None:
            self._waiters[k] = [fut]
            if self._armed is None or k < self._armed:
                self._arm(loop, k)
        else:
            at.append(fut)
        return fut

    def _arm(self, loop: asyncio.AbstractEventLoop, k: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = k
        self._handle = loop.call_at(k * self.period, self._fire)

    def _fire(self) -> None:
        self.fired += 1
        self._handle = self._armed = None
        loop = asyncio.get_running_loop()
        now = loop.time() + 0.001  # a loop may run a timer up to its clock resolution early
        for k in [k for k in self._waiters if k * self.period <= now]:
            for fut in self._waiters.pop(k):
                if not fut.done():  # a writer cancelled while it waited
                    fut.set_result(None)
        if self._waiters:
            self._arm(loop, min(self._waiters))


_TICKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = weakref.WeakKeyDictionary()


def shared_ticker() -> Ticker:
    """The running loop's ticker (one per loop: tests run many loops)."""
    loop = asyncio.get_running_loop()
    t = _TICKERS.get(loop)
    if t is None:
        t = _TICKERS[loop] = Ticker()
    return t


class Playout:
    def __init__(
        self,
        send_media: Callable[[bytes], Awaitable[None]],
        send_mark: Callable[[str], Awaitable[None]],
        send_clear: Callable[[], Awaitable[None]],
        *,
        lead_ms: int = 60,
        frames_per_message: int = 1,
        ticker: Ticker | None = None,
    ) -> None:
        self._send_media, self._send_mark, self._send_clear = send_media, send_mark, send_clear
        self.lead = lead_ms / 1000
        if not 1 <= frames_per_message <= 10:
            raise ValueError("frames_per_message must be 1-10")
        self.per_message = frames_per_message
        self._ticker = ticker
        self._now: Callable[[], float] = time.monotonic  # the loop's clock once run() runs
        self._queue: deque[bytes | str] = deque()  # bytes = one frame, str = a mark name
        self._framer = Framer(FRAME_BYTES)
        self._wake = asyncio.Event()
        self._t0 = 0.0  # media clock origin of the current run of frames
        self._n = 0  # frames sent since _t0
        self._k0 = 0  # the tick that frame 0 of this run goes out on
        self._epoch = 0  # bumped by clear(): a frame popped before it is stale
        self.frames_sent = 0
        self.on_first_frame: Callable[[], None] | None = None  # called once per arm_first_frame()

    # --- producer side -------------------------------------------------------
    def enqueue_audio(self, ulaw: bytes) -> None:
        for frame in self._framer.feed(ulaw):
            self._queue.append(frame)
        self._wake.set()

    def enqueue_mark(self, name: str) -> None:
        """Close the current audio (padding the last frame) and queue a mark after it."""
        for frame in self._framer.flush():
            self._queue.append(frame)
        self._queue.append(name)
        self._wake.set()

    async def clear(self) -> list[str]:
        """Drop everything not yet sent and tell Twilio to drop what it buffered.
        Returns the names of marks that were dropped before being sent."""
        dropped = [x for x in self._queue if isinstance(x, str)]
        self._queue.clear()
        self._framer.reset()
        self._n = 0
        self._t0 = 0.0
        self._epoch += 1
        await self._send_clear()
        return dropped

    async def burst(self, ulaw: bytes, mark: str) -> None:
        """Send ``ulaw`` and then ``mark`` at once, not paced (call after ``clear``): the far
        end queues media messages of any size and plays them in order, so the caller hears
        all of it even if this loop is too busy to pace it (the goodbye at a drain, when
        the socket must close soon after). Nothing can be cleared or interrupted after it."""
        self._queue.clear()
        self._framer.reset()
        self._epoch += 1
        framer = Framer(FRAME_BYTES)
        frames = [*framer.feed(ulaw), *framer.flush()]
        for i in range(0, len(frames), self.per_message):
            await self._send_media(b"".join(frames[i : i + self.per_message]))
        await self._send_mark(mark)
        self.frames_sent += len(frames)
        self._t0, self._n = self._now(), len(frames)  # what the far end still has to play

    @property
    def queued_ms(self) -> float:
        frames = sum(1 for x in self._queue if not isinstance(x, str))
        return frames * FRAME_MS + self._framer.pending / 8

    @property
    def idle(self) -> bool:
        return not self._queue and not self._framer.pending

    def ahead_ms(self) -> float:
        """How much sent audio Twilio still has to play (by our media clock)."""
        if not self._t0:
            return 0.0
        return max(0.0, (self._t0 + self._n * FRAME_S - self._now()) * 1000)

    # --- the writer task -------------------------------------------------------
    async def run(self) -> None:
        ticker = self._ticker or shared_ticker()
        per_frame = max(1, round(FRAME_S / ticker.period))
        loop = asyncio.get_running_loop()
        self._now = loop.time
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if isinstance(self._queue[0], str):
                await self._send_mark(self._queue.popleft())  # type: ignore[arg-type]
                continue
            now = loop.time()
            if not self._t0 or now > self._t0 + self._n * FRAME_S + 0.1:
                # first frame, or the queue ran dry: restart the media clock now; frame n
                # goes out on tick k0 + n * per_frame (integers: no drift)
                self._t0, self._n = now, 0
                self._k0 = ticker.tick_at_or_after(now - self.lead)
            fut = ticker.wait(self._k0 + self._n * per_frame)
            if fut is not None:
                epoch = self._epoch
                await fut
                if epoch != self._epoch:
                    continue  # cleared while we waited: what was queued is gone
            audio = self._take()
            if not audio:
                continue
            n = len(audio) // FRAME_BYTES
            self._n += n
            self.frames_sent += n
            cb, self.on_first_frame = self.on_first_frame, None
            await self._send_media(audio)
            if cb is not None:
                cb()

    def _take(self) -> bytes:
        """Up to ``frames_per_message`` frames from the head of the queue, up to a mark."""
        q = self._queue
        if self.per_message == 1 or len(q) == 1:
            item = q.popleft() if q and not isinstance(q[0], str) else b""
            return item  # type: ignore[return-value]
        parts: list[bytes] = []
        while q and len(parts) < self.per_message and not isinstance(q[0], str):
            parts.append(q.popleft())  # type: ignore[arg-type]
        return b"".join(parts)
