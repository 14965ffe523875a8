"""What the bot needs from storage. Backends implement ``Store``; tests may use any
object that does (a real backend on a temp dir is preferred over a hand-written fake).

Rules every backend keeps:
- ``save_message`` returns only once the message is committed, and the notifications it
  causes are queued in the outbox in the same transaction (nothing is lost between the
  two). Only a confirmed turn (never a speculative one) calls it.
- Nothing here logs a message's content, a name or a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MESSAGE_STATUSES = ("new", "incomplete", "handled")
CALL_OUTCOMES = ("answered", "message", "transferred", "emergency", "abandoned", "failed")


@dataclass(frozen=True)
class NewMessage:
    call_sid: str
    caller: str  # the caller ID as received (E.164 or a SIP URI), "" if unknown
    name: str
    callback_number: str
    about: str
    urgent: bool = False
    complete: bool = True  # False: the caller left mid-form; stored as status "incomplete"


@dataclass(frozen=True)
class StoredMessage:
    id: int
    created_at: float  # unix seconds (UTC)
    call_sid: str
    caller: str
    name: str
    callback_number: str
    about: str
    urgent: bool
    status: str  # one of MESSAGE_STATUSES


@dataclass(frozen=True)
class TurnRecord:
    n: int
    started_at: float  # unix seconds
    latency_ms: float | None  # end of the caller's speech -> first reply audio
    outcome: str  # "ok", "fallback", "cancelled", ...
    error_stage: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class CallRecord:
    call_sid: str
    stream_sid: str
    caller: str
    started_at: float
    ended_at: float | None  # None while the call is live
    outcome: str | None  # one of CALL_OUTCOMES once ended
    ended_by: str | None  # "caller", "bot", "drain", "error", ...
    turns: tuple[TurnRecord, ...] = ()


class Store(Protocol):
    async def save_message(self, msg: NewMessage) -> int:
        """Commit the message (and queue its notifications); return its id."""
        ...

    async def messages(self, *, since: float | None = None, status: str | None = None, limit: int = 100) -> list[StoredMessage]: ...

    async def mark_handled(self, message_id: int) -> bool: ...

    async def call_started(self, *, call_sid: str, stream_sid: str, caller: str, started_at: float) -> None: ...

    async def call_ended(
        self, *, call_sid: str, ended_at: float, outcome: str, ended_by: str, turns: Sequence[TurnRecord]
    ) -> None: ...

    async def calls(self, *, limit: int = 50) -> list[CallRecord]: ...

    async def message(self, message_id: int) -> StoredMessage | None: ...

    async def call(self, call_sid: str) -> CallRecord | None: ...

    async def revoke_session(self, session_id: str, expires_at: float) -> None:
        """Remember until ``expires_at`` that this console session was ended (idempotent)."""
        ...

    async def session_revoked(self, session_id: str) -> bool: ...
