"""What the processes of one instance share: call slots (MAX_CALLS), the wrong-key
buckets, and which workers are ready.

One instance is one machine's ``python -m bot``: one process, or a supervisor and its
WORKERS. They share an SQLite file in the supervisor's run directory
(``PHONEBOT_INSTANCE_DIR``, a fresh private temp dir); a single process keeps the same
tables in memory. Why SQLite rather than the store or a shared-memory table: these
limits belong to one machine (MAX_CALLS is what its CPU carries), every operation is one
local transaction of tens of microseconds with no network, a flood of wrong keys never
reaches the shared database, and a check-then-take is atomic (``BEGIN IMMEDIATE``)
without hand-made locks. What must hold across instances (a CallSid admitted once, a
pending transfer) is in the store (bot/store/shared.py).

Calls count the same way everywhere: a voice webhook reserves a slot for its CallSid
until the stream starts (here, or on another instance: the store says so, checked every
second) or the token expires; the stream (or a browser call) holds a slot while it is live. Sockets that never start hold none. The webhook's busy answer, the
media socket's admission and ``/readyz`` all read ``used()``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

NAME = "instance.sqlite3"
PRUNE_EVERY = 256  # wrong keys between sweeps of buckets that are full again

_TABLES = """
CREATE TABLE IF NOT EXISTS slots (id TEXT PRIMARY KEY, call_sid TEXT NOT NULL, worker INTEGER NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS workers (idx INTEGER PRIMARY KEY, pid INTEGER NOT NULL, ready INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, tokens REAL NOT NULL, t REAL NOT NULL);
"""


class InstanceState:
    def __init__(self, path: Path | None = None, *, worker: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        """``path``: the shared file (None: in memory, this process only). ``clock``: one all
        the processes share (CLOCK_MONOTONIC is system-wide on Linux)."""
        self.worker, self.clock = worker, clock
        self.db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, timeout=5.0, check_same_thread=False)
        if path:
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # a crash of the machine loses nothing that outlives it
        self.db.executescript(_TABLES)
        self._failures = 0

    @classmethod
    def open(cls, instance_dir: str, worker: int) -> InstanceState:
        return cls(Path(instance_dir) / NAME if instance_dir else None, worker=worker)

    def close(self) -> None:
        self.db.close()

    def _tx(self):
        return _Immediate(self.db)

    # --- call slots ----------------------------------------------------------------------
    def _count(self, now: float) -> int:
        self.db.execute("DELETE FROM slots WHERE expires IS NOT NULL AND expires < ?", (now,))
        return int(self.db.execute("SELECT count(*) FROM slots").fetchone()[0])

    def reserve(self, call_sid: str, ttl_s: float, cap: int) -> bool:
        """At the voice webhook: hold a slot for ``call_sid``'s stream for ``ttl_s``."""
        now = self.clock()
        with self._tx():
            held = self.db.execute("SELECT 1 FROM slots WHERE id = ?", ("r:" + call_sid,)).fetchone()
            if not held and self._count(now) >= cap:
                return False
            self.db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?, ?, ?)", ("r:" + call_sid, call_sid, self.worker, now + ttl_s))
        return True

    def take(self, slot: str, call_sid: str, cap: int) -> bool:
        """A call goes live as ``slot``: its webhook's reservation if there is one here,
        else a free slot. False at capacity."""
        now = self.clock()
        with self._tx():
            cur = self.db.execute(
                "UPDATE slots SET id = ?, worker = ?, expires = NULL WHERE id = ? AND expires >= ?", (slot, self.worker, "r:" + call_sid, now)
            )
            if cur.rowcount == 1:
                return True
            if self._count(now) >= cap:
                return False
            self.db.execute("INSERT INTO slots VALUES (?, ?, ?, NULL)", (slot, call_sid, self.worker))
        return True

    def reserved(self) -> list[str]:
        """The CallSids holding a reservation (their stream not started here)."""
        now = self.clock()
        return [r[0] for r in self.db.execute("SELECT call_sid FROM slots WHERE id LIKE 'r:%' AND expires >= ?", (now,))]

    def drop_reservations(self, call_sids: list[str]) -> None:
        """Those calls' streams started on another instance: their slots here are free."""
        with self._tx():
            self.db.executemany("DELETE FROM slots WHERE id = ?", [("r:" + sid,) for sid in call_sids])

    def release(self, slot: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM slots WHERE id = ?", (slot,))

    def used(self) -> int:
        """Live calls and unexpired reservations, in every process of the instance."""
        now = self.clock()
        return int(self.db.execute("SELECT count(*) FROM slots WHERE expires IS NULL OR expires >= ?", (now,)).fetchone()[0])

    # --- workers (the supervisor's) ------------------------------------------------------
    def worker_ready(self, idx: int, pid: int) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, 1)", (idx, pid))

    def ready_workers(self) -> dict[int, int]:
        """index -> pid of each worker that said it is ready."""
        return {int(i): int(p) for i, p in self.db.execute("SELECT idx, pid FROM workers WHERE ready = 1")}

    def worker_gone(self, idx: int) -> None:
        """A worker exited: it is not ready, and its calls (and reservations) are over."""
        with self._tx():
            self.db.execute("DELETE FROM workers WHERE idx = ?", (idx,))
            self.db.execute("DELETE FROM slots WHERE worker = ?", (idx,))

    # --- token buckets (handlers/login_limit.py) -----------------------------------------
    def bucket_level(self, name: str, size: int, refill_s: float, now: float) -> float:
        row = self.db.execute("SELECT tokens, t FROM buckets WHERE name = ?", (name,)).fetchone()
        return float(size) if row is None else min(float(size), row[0] + (now - row[1]) / refill_s)

    def bucket_take(self, name: str, size: int, refill_s: float, now: float) -> float:
        """Take one token (the level may go below zero); the level left."""
        with self._tx():
            left = self.bucket_level(name, size, refill_s, now) - 1
            self.db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (name, left, now))
            self._failures += 1
            if self._failures % PRUNE_EVERY == 0:  # buckets full again are no loss
                self.db.execute("DELETE FROM buckets WHERE t < ? AND name != '*'", (now - size * refill_s,))
        return left


class _Immediate:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): a check-then-write no other process interleaves."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, _exc, _tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
