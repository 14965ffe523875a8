"""A time bound on a stream, to its first item and between items, at no cost per item.

Wrapping every ``await`` of a streamed reply in ``asyncio.timeout`` costs a timeout
object, a timer in the loop's heap and a wrapper coroutine per chunk: for a reply of
a few dozen SSE events or audio chunks that was a tenth of a turn's CPU. ``Stall``
enters one ``asyncio.timeout`` around the whole loop and keeps one lazy timer: an
item only moves a float (``tick``); when the timer fires it re-arms itself at the
current deadline, and only a deadline really passed cancels the read (the
``asyncio.Timeout`` does that, so the read raises ``TimeoutError`` inside the block
and ``Stall.expired`` says it was ours). One timer per budget instead of one per item.

While a generator hands an item on (``yield`` inside the block), the consumer's time
must not count against the source: ``hold()`` before the ``yield``, ``resume()``
after it. Usage::

    async with Stall(first_by=loop.time() + 5, gap=5) as stall:
        async for chunk in source:
            stall.tick()           # progress: the gap bound restarts
            stall.hold()
            yield chunk
            stall.resume()

or, for exactly that loop, ``async with aclosing(stall.over(source)) as items`` (closed with
its consumer, so the bound never outlives it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")

# The bounds whose streams this task is reading (``Stall.over``), innermost last.
_READING: ContextVar[tuple[Stall, ...]] = ContextVar("stall_reading", default=())


@contextmanager
def off_the_clock() -> Iterator[None]:
    """Time spent in this block does not count against the bounds of the streams this task
    is reading: a source that waits on a side effect it does not control (the dialogue
    waiting for a message to be saved) is not a stalled source."""
    held = [s for s in _READING.get() if not s.held]
    for s in held:
        s.hold()
    try:
        yield
    finally:
        for s in held:
            s.resume()


class Stall:
    """``first_by``: loop time by which the first progress must come (``started()``
    ends that phase; ``tick()`` implies it unless ``tick_starts=False``); ``gap``:
    seconds allowed between progress after that."""

    def __init__(self, first_by: float, gap: float, *, tick_starts: bool = True) -> None:
        self.first_by = first_by
        self.gap = gap
        self.deadline = first_by
        self.started = False
        self._tick_starts = tick_starts
        self._held = False
        self._held_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cm: asyncio.Timeout | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")

    async def __aenter__(self) -> Stall:
        self._loop = asyncio.get_running_loop()
        self._cm = asyncio.timeout(None)
        await self._cm.__aenter__()
        self._arm()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self._cm is not None
        await self._cm.__aexit__(et, exc, tb)

    async def over(self, items: AsyncIterator[T], progress: Callable[[T], bool] | None = None) -> AsyncGenerator[T, None]:
        """``items`` under this bound: each item (or each that ``progress`` accepts) is
        progress, and the consumer's time with it does not count. A bound that ran out
        raises ``TimeoutError`` here."""
        outer = _READING.get()
        async with self:
            _READING.set((*outer, self))
            try:
                async for item in items:
                    if progress is None or progress(item):
                        self.tick()
                    self.hold()
                    _READING.set(outer)  # the consumer reads only the bounds around it
                    yield item
                    _READING.set((*outer, self))
                    self.resume()
            finally:
                _READING.set(outer)

    def expired(self) -> bool:
        """Did this bound end the block (the ``TimeoutError`` is ours)?"""
        return self._cm is not None and self._cm.expired()

    def start(self) -> None:
        """The first real output came: from now on only the gap bound applies."""
        self.started = True
        self._move(self._now() + self.gap)

    def tick(self) -> None:
        """Progress: restart the gap bound (before ``started``, only if ``tick_starts``)."""
        if self.started or self._tick_starts:
            self.started = True
            self._move(self._now() + self.gap)

    def _move(self, deadline: float) -> None:
        self.deadline = deadline
        if deadline < self._armed_at and not self._held:  # sooner than the timer: re-arm (rare)
            if self._timer is not None:
                self._timer.cancel()
            self._arm()

    @property
    def held(self) -> bool:
        """Not counting now (``hold`` until ``resume``)."""
        return self._held

    def hold(self) -> None:
        """Stop counting (the item is with the consumer). If the bound was due this very
        loop turn, the item won: the pending expiry is withdrawn."""
        self._held = True
        self._held_at = self._now()
        assert self._cm is not None
        if self._cm.when() is not None:
            self._cm.reschedule(None)

    def resume(self) -> None:
        """Count again: the bound moves on by the time held, so the consumer's time does
        not count and the source's does (an item that was no progress gained it none)."""
        self._held = False
        self._move(self.deadline + (self._now() - self._held_at))
        if self._timer is None:
            self._arm()

    def now(self) -> float:
        return self._now()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _arm(self) -> None:
        assert self._loop is not None
        self._armed_at = self.deadline
        self._timer = self._loop.call_at(self.deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        self._armed_at = float("inf")
        if self._held:
            return  # resume() re-arms
        now = self._now()
        if now < self.deadline:
            self._arm()
        else:
            assert self._cm is not None
            self._cm.reschedule(now)  # the Timeout cancels the read and raises TimeoutError in the block


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stopping`` is set; True when it is (a loop that stops
    only between its pieces of work ends then, never inside one)."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
