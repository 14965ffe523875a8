"""An in-memory object that keeps the ``bot.store.api.Store`` contract, for dialogue and
call tests until the real backends are merged. ``fail`` makes ``save_message`` raise."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.store.api import CallRecord, NewMessage, StoredMessage, TranscriptLine, Transfer, TurnRecord


@dataclass
class MemoryStore:
    saved: list[StoredMessage] = field(default_factory=list)
    calls_: dict[str, CallRecord] = field(default_factory=dict)
    fail: bool = False
    revoked: dict[str, float] = field(default_factory=dict)

    async def save_message(self, msg: NewMessage, *, final: bool = True) -> int:
        """Upsert by ``msg.uid`` as the SQL store does; drafts (incomplete, not final) are kept too."""
        if self.fail:
            raise OSError(28, "No space left on device")
        for i, old in enumerate(self.saved):
            if msg.uid and old.uid == msg.uid:
                if old.status == "incomplete":
                    self.saved[i] = StoredMessage(old.id, old.created_at, msg.call_sid, msg.caller, msg.name, msg.callback_number,
                                                  msg.about, msg.urgent, "new" if msg.complete else "incomplete", msg.uid)
                return old.id
        m = StoredMessage(len(self.saved) + 1, time.time(), msg.call_sid, msg.caller, msg.name, msg.callback_number,
                          msg.about, msg.urgent, "new" if msg.complete else "incomplete", msg.uid)
        self.saved.append(m)
        return m.id

    async def messages(self, *, since: float | None = None, status: str | None = None, limit: int = 100) -> list[StoredMessage]:
        out = [m for m in reversed(self.saved) if (since is None or m.created_at >= since) and (status is None or m.status == status)]
        return out[:limit]

    async def mark_handled(self, message_id: int) -> bool:
        for i, m in enumerate(self.saved):
            if m.id == message_id:
                self.saved[i] = StoredMessage(**{**m.__dict__, "status": "handled"})
                return True
        return False

    async def call_started(self, *, call_sid: str, stream_sid: str, caller: str, started_at: float) -> None:
        self.calls_[call_sid] = CallRecord(call_sid, stream_sid, caller, started_at, None, None, None)

    async def call_ended(self, *, call_sid: str, ended_at: float, outcome: str, ended_by: str, turns: Sequence[TurnRecord],
                         transcript: Sequence[TranscriptLine] = (), transfer: Transfer | None = None) -> None:
        c = self.calls_[call_sid]
        self.calls_[call_sid] = CallRecord(c.call_sid, c.stream_sid, c.caller, c.started_at, ended_at, outcome, ended_by, tuple(turns),
                                           transfer, tuple(transcript))

    async def calls(self, *, limit: int = 50) -> list[CallRecord]:
        return list(self.calls_.values())[-limit:]

    async def revoke_session(self, session_id: str, expires_at: float) -> None:
        self.revoked[session_id] = expires_at

    async def session_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked
