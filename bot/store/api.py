"""What the bot needs from storage. Backends implement ``Store``; tests may use any
object that does (a real backend on a temp dir is preferred over a hand-written fake).

Rules every backend keeps:
- ``save_message`` returns only once the message is committed, and the notifications it
  causes are queued in the outbox in the same transaction (nothing is lost between the
  two). Only a confirmed turn (never a speculative one) calls it. Saving the same
  ``uid`` again (a retry whose first try did commit) changes nothing and queues nothing.
- Nothing here logs a message's content, a name or a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MESSAGE_STATUSES = ("new", "incomplete", "handled")
CALL_OUTCOMES = ("answered", "message", "transferred", "transfer_failed", "emergency", "abandoned", "failed", "lost")
# "transfer_failed": the carrier refused the transfer (a SIP REFER declined); the caller heard the trouble prompt
# "lost": the process that had the call died (kill -9, a crash); another instance, or this
# one restarted, closed the record once its lease ran out and told the owner


@dataclass(frozen=True)
class NewMessage:
    call_sid: str
    caller: str  # the caller ID as received (E.164 or a SIP URI), "" if unknown
    name: str
    callback_number: str
    about: str
    urgent: bool = False
    complete: bool = True  # False: the caller left mid-form; stored as status "incomplete"
    uid: str = ""  # the message's global identity (a UUID4), made at its first save; "" : a new one


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
    uid: str = ""  # globally unique (row ids restart in every database)


@dataclass(frozen=True)
class TurnRecord:
    n: int
    started_at: float  # unix seconds
    latency_ms: float | None  # end of the caller's speech -> first reply audio
    outcome: str  # "ok", "fallback", "cancelled", ...
    error_stage: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class TranscriptLine:
    """One thing said on a call (stored only with STORE_TRANSCRIPTS): the caller's words of
    a confirmed turn, or the bot's reply or prompt (``prompt`` names it: greeting, fallback...)."""

    turn: int  # the caller turn it belongs to; 0: before the caller's first turn
    at: float  # unix seconds; the retention sweep deletes by it
    speaker: str  # "caller" or "bot"
    text: str
    prompt: str | None = None
    interrupted: bool = False  # the caller barged in: ``text`` is what they heard of the reply


@dataclass(frozen=True)
class Transfer:
    purpose: str  # the profile's transfer purpose (front_desk, on_call...) or why (failures)
    to: str  # the number, masked


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
    transfer: Transfer | None = None
    transcript: tuple[TranscriptLine, ...] = ()  # filled by ``call`` (one call), not by ``calls``


class Store(Protocol):
    async def save_message(self, msg: NewMessage, *, final: bool = True) -> int:
        """Commit the message (and queue its notifications); return its id. Idempotent per
        ``msg.uid``. An incomplete message with ``final=False`` is a draft (a form still
        being filled): kept, not yet notified."""
        ...

    async def messages(self, *, since: float | None = None, status: str | None = None, limit: int = 100) -> list[StoredMessage]: ...

    async def mark_handled(self, message_id: int) -> bool: ...

    async def call_started(self, *, call_sid: str, stream_sid: str, caller: str, started_at: float) -> None: ...

    async def call_ended(
        self, *, call_sid: str, ended_at: float, outcome: str, ended_by: str, turns: Sequence[TurnRecord],
        transcript: Sequence[TranscriptLine] = (), transfer: Transfer | None = None,
    ) -> None:
        """Also stores the transcript lines (given only with STORE_TRANSCRIPTS) in the same transaction."""
        ...

    async def calls(self, *, limit: int = 50) -> list[CallRecord]: ...

    async def find_calls(self, *, number: str = "", outcome: str | None = None, limit: int = 100) -> list[CallRecord]:
        """Newest first; ``number``: digits the caller ID or a message's callback number contains."""
        ...

    async def messages_of_call(self, call_sid: str) -> list[StoredMessage]: ...

    async def forget_transcripts(self, *, before: float) -> int:
        """Delete the transcripts of calls that started before ``before`` (unix seconds); return how many lines."""
        ...

    async def message(self, message_id: int) -> StoredMessage | None: ...

    async def call(self, call_sid: str) -> CallRecord | None: ...

    async def revoke_session(self, session_id: str, expires_at: float) -> None:
        """Remember until ``expires_at`` that this console session was ended (idempotent)."""
        ...

    async def session_revoked(self, session_id: str) -> bool: ...
