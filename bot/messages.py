"""Caller messages taken by the receptionist, in SQLite.

The store is synchronous (one short transaction per message); the async wrappers run
it on a thread so the event loop never waits on the disk. Nothing here logs the
message, the name or the number.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bot.files import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    name TEXT NOT NULL,
    callback TEXT NOT NULL,
    topic TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Message:
    id: int
    created_at: float
    call_id: str
    caller: str
    name: str
    callback: str
    topic: str


class MessageStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        private_file(self.path)  # 0600 in a 0700 directory: callers' names and numbers
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def save(self, *, call_id: str, caller: str, name: str, callback: str, topic: str) -> int:
        with self._lock, self._connect() as db:
            cur = db.execute(
                "INSERT INTO messages (created_at, call_id, caller, name, callback, topic) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), call_id, caller, name, callback, topic),
            )
            return int(cur.lastrowid)

    def recent(self, limit: int = 50) -> list[Message]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, created_at, call_id, caller, name, callback, topic FROM messages ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Message(*r) for r in rows]

    async def save_async(self, **fields: str) -> int:
        return await asyncio.to_thread(lambda: self.save(**fields))
