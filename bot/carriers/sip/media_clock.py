"""The media clock: one timer per event loop ticks every SIP call's media each 20 ms.

The sender is paced by one clock per event loop that ticks every call's media every 20 ms
(one timer for all calls, not one per call: a timer wake-up is most of what a call's 50
packets a second cost). Each tick sends one packet: the next queued frame, or a silence
frame when nothing is queued. Continuous RTP is what PBXes and SBCs expect (several treat a
silent stream as dead media and hang up), and it keeps the far end's jitter buffer and NAT
bindings warm. After a stall of the loop the clock skips the missed slots rather than bursting
them out: the RTP timestamp jumps with the clock (marker bit set), the sequence does not.

The RTP sockets are not watched by the event loop: each tick the clock asks one epoll set of
every call's RTP socket (no wait) which have datagrams, and reads those (at most ``POLL_MAX``
rounds), so N calls cost one loop wake-up every 20 ms instead of one per inbound packet, and a
call with nothing pending costs no system call (where there is no epoll each call tries its own
socket). The jitter buffer sees the same arrival clock as before
(its clock is the tick count); the RTCP socket is watched as usual (a packet every 5 s).
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import Protocol
from weakref import WeakKeyDictionary

log = logging.getLogger("bot.carriers.sip")

TICK_S = 0.020
STALL_TICKS = 3  # behind by more than this many slots: skip them instead of catching up
POLL_MAX = 64  # datagrams read from one call's RTP socket per tick; more is a flood (the kernel drops the rest)


class Clocked(Protocol):
    """What the clock asks of one call's media (bot.carriers.sip.media_session.RtpMedia)."""

    def read_one(self, now: float) -> None: ...

    def tick(self, now: float, missed: int) -> None: ...

    def fail(self) -> None: ...


class MediaClock:
    """Ticks every open call's media each 20 ms on the loop's clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sessions: dict[Clocked, None] = {}  # insertion-ordered set
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.stalls = 0
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._readers: dict[int, Clocked] = {}  # RTP socket fd -> its call's media

    def watch(self, fd: int, media: Clocked) -> bool:
        """Read ``media``'s socket on each tick from the shared epoll set (False: no epoll here)."""
        if self._epoll is None:
            return False
        try:
            self._epoll.register(fd, select.EPOLLIN)
        except FileExistsError:  # a number a closed call left behind (never the case when close() ran)
            self._epoll.modify(fd, select.EPOLLIN)
        self._readers[fd] = media
        return True

    def unwatch(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None and self._epoll is not None:
            self._epoll.unregister(fd)

    def _read(self, now: float) -> None:
        """One datagram from each ready socket per round, until none is ready (or POLL_MAX rounds)."""
        if not self._readers or self._epoll is None:
            return
        poll, readers = self._epoll.poll, self._readers
        for _ in range(POLL_MAX):
            ready = poll(0)
            if not ready:
                return
            for fd, _ev in ready:
                media = readers.get(fd)
                if media is not None:
                    media.read_one(now)

    def add(self, media: Clocked) -> None:
        self.sessions[media] = None
        if self._handle is None:
            self._due = self.loop.time() + TICK_S
            self._handle = self.loop.call_at(self._due, self._run)

    def remove(self, media: Clocked) -> None:
        self.sessions.pop(media, None)
        if not self.sessions and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        now = self.loop.time()
        missed = int((now - self._due) / TICK_S)
        if missed > STALL_TICKS:
            self.stalls += 1
            self._due += missed * TICK_S
        else:
            missed = 0
        self._read(now)
        for media in list(self.sessions):
            try:
                media.tick(now, missed)
            except Exception:  # a bug in one call's media must not stop every call's clock
                log.exception("sip media tick failed; ending that call's media")
                media.fail()
        self._due += TICK_S
        self._handle = self.loop.call_at(self._due, self._run) if self.sessions else None


_CLOCKS: WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = WeakKeyDictionary()


def media_clock() -> MediaClock:
    loop = asyncio.get_running_loop()
    clock = _CLOCKS.get(loop)
    if clock is None:
        clock = _CLOCKS[loop] = MediaClock(loop)
    return clock
