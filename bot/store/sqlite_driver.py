"""aiosqlite connections whose close cannot wait forever.

aiosqlite (0.22) runs each connection on its own thread and stops it with a job that
makes the thread exit. ``stop()`` queues that job each time it is called, and
``close()`` calls it again in its ``finally``. When SQLAlchemy invalidates a connection
(a query was cancelled) and the cancelling task is cancelled a second time, it stops
the connection while its shielded graceful close is still running; the close's own
stop then queues a job behind the one that ended the thread, and waits on a future
nobody will resolve. That task blocks the loop's shutdown for ever (seen in CI: a
test's tear-down hung 300 s; in production, a shutdown would hang).

Here ``stop()`` is idempotent: every call after the first waits on the first call's
future, which the thread resolves as it exits. Nothing else of aiosqlite changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import aiosqlite


class _Connection(aiosqlite.Connection):
    _stopped: asyncio.Future[object] | None
    _stop_called = False

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(partial(sqlite3.connect, str(path), timeout=timeout, check_same_thread=False), 64)
        self._thread.daemon = True  # as SQLAlchemy's dialect does: a stuck query never blocks the exit

    def stop(self) -> asyncio.Future[object] | None:
        if self._stop_called:
            return self._stopped
        self._stop_called = True
        self._stopped = super().stop()
        return self._stopped


def connector(path: Path, *, timeout: float) -> aiosqlite.Connection:
    """A connection to the SQLite file at ``path`` (awaited by SQLAlchemy's
    ``async_creator``), with the same arguments its aiosqlite dialect would pass."""
    return _Connection(path, timeout)
