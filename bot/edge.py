"""The connection edge: deadlines and a cap on open sockets, so silent, slow or
numerous connections cannot hold the server, and the accept-error storm a full
file table causes is logged once in a while instead of thousands of times a second.

Every connection is in one of four phases:
- ``new``: connected, its first request's line and headers not yet in; closed past
  ``header_timeout``.
- ``idle``: kept alive after a response, waiting for the next request; closed past
  ``keepalive`` plus ``header_timeout``. aiohttp's own keep-alive timer backs this up.
- ``body``: a handler is reading the request body; closed past ``body_timeout``
  (handlers that read with their own deadline answer 408 first).
- ``busy``: a handler is working (a webhook, a Media Streams websocket for the whole
  call): no deadline here, the handlers own their time.
Past ``max_connections`` open sockets, a new connection evicts, in this order: the
oldest kept-alive idle socket, the oldest still sending its body (a slow body), the
oldest new one that has been silent for ``FRESH_S`` or more, and only then the oldest
new one; when every socket is busy, the new one is closed at once. So a real request
that has just connected (its headers on their way) outlives slow bodies and idle
sockets. The effective cap stays below the process's file limit.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.logs import kv

log = logging.getLogger("bot.edge")

NEW, IDLE, BODY, BUSY = "new", "idle", "body", "busy"
SWEEP_S = 0.5
FRESH_S = 1.0  # a new connection this young is only evicted when nothing else can be
FD_RESERVE = 48  # descriptors kept for the models, the database, provider sockets, logs
_FD_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass
class _Conn:
    transport: Any
    opened: float
    phase: str = NEW
    deadline: float | None = None


@dataclass
class EdgeStats:
    open: int = 0
    closed_idle: int = 0  # past the header / keep-alive deadline
    closed_body: int = 0  # past the body deadline
    evicted: int = 0  # closed to make room for a new connection
    refused: int = 0  # new connections closed at once: every socket busy


def fd_cap(wanted: int) -> int:
    """``wanted``, lowered to leave FD_RESERVE descriptors of the soft file limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - FD_RESERVE))


class ConnectionGuard:
    def __init__(self, *, max_connections: int, header_timeout: float, body_timeout: float, keepalive: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = fd_cap(max_connections)
        self.header_timeout, self.body_timeout, self.keepalive = header_timeout, body_timeout, keepalive
        self.clock = clock
        self._conns: dict[Any, _Conn] = {}  # transport -> state
        self._sweeper: asyncio.TimerHandle | None = None
        self.stats = EdgeStats()

    @classmethod
    def from_settings(cls, settings) -> ConnectionGuard:
        return cls(max_connections=settings.max_connections, header_timeout=settings.header_timeout_s,
                   body_timeout=settings.body_timeout_s, keepalive=settings.keepalive_timeout_s)

    # wiring: aiohttp's web.Server hears of every connection from its RequestHandler
    def attach(self, server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            self.opened(transport)

        def connection_lost(handler, exc=None) -> None:
            tr = handler.transport
            lost(handler, exc)
            self.lost(tr)

        server.connection_made, server.connection_lost = connection_made, connection_lost

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # the connection's life
    def opened(self, transport) -> None:
        now = self.clock()
        if len(self._conns) >= self.cap and not self._evict_one():
            self.stats.refused += 1
            transport.abort()
            return
        self._conns[transport] = _Conn(transport, now, NEW, now + self.header_timeout)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    def lost(self, transport) -> None:
        self._conns.pop(transport, None)

    def reading_body(self, transport) -> None:
        self._set(transport, BODY, self.body_timeout + 1.0)  # handlers answer 408 a moment before

    def busy(self, transport) -> None:
        self._set(transport, BUSY, None)

    def done(self, transport) -> None:
        """A response went out; a kept-alive connection waits for the next request."""
        self._set(transport, IDLE, self.keepalive + self.header_timeout)

    def _set(self, transport, phase: str, timeout: float | None) -> None:
        c = self._conns.get(transport)
        if c is not None:
            c.phase = phase
            c.deadline = None if timeout is None else self.clock() + timeout

    def _evict_one(self) -> bool:
        now = self.clock()
        tiers = (
            lambda c: c.phase == IDLE,  # kept alive, nothing asked
            lambda c: c.phase == BODY,  # a slow body
            lambda c: c.phase == NEW and now - c.opened >= FRESH_S,  # silent since it connected
            lambda c: c.phase == NEW,  # a flood of new connections: the oldest goes
        )
        for tier in tiers:
            oldest = min((c for c in self._conns.values() if tier(c)), key=lambda c: c.opened, default=None)
            if oldest is not None:
                self._close(oldest)
                self.stats.evicted += 1
                return True
        return False

    def _close(self, c: _Conn) -> None:
        self._conns.pop(c.transport, None)
        c.transport.abort()

    def _sweep(self) -> None:
        now = self.clock()
        for c in [c for c in self._conns.values() if c.deadline is not None and now >= c.deadline]:
            if c.phase == BODY:
                self.stats.closed_body += 1
            else:
                self.stats.closed_idle += 1
            self._close(c)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep) if self._conns else None

    def snapshot(self) -> dict:
        phases: dict[str, int] = {}
        for c in self._conns.values():
            phases[c.phase] = phases.get(c.phase, 0) + 1
        s = self.stats
        return {"open": len(self._conns), "cap": self.cap, "phases": phases, "closed_idle": s.closed_idle,
                "closed_body": s.closed_body, "evicted": s.evicted, "refused": s.refused}


class AcceptErrorThrottle:
    """A loop exception handler: 'accept() out of system resource' (EMFILE and kin)
    is logged at most once per ``every_s`` seconds with how many were folded in;
    everything else goes to the loop's default handler."""

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._last = float("-inf")
        self.suppressed = 0
        self.total = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _FD_ERRNOS):
            loop.default_exception_handler(context)
            return
        self.total += 1
        now = self.clock()
        if now - self._last < self.every_s:
            self.suppressed += 1
            return
        log.warning(
            "accept failed: out of file descriptors; new connections wait",
            extra=kv(error=errno.errorcode.get(exc.errno, str(exc.errno)), folded=self.suppressed, every_s=self.every_s),
        )
        self._last, self.suppressed = now, 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)
