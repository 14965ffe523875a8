"""Stored transcripts and call search, mixed into ``SqlStore``.

A call's transcript is written with the end of its call record (same transaction), one
row a line, only when STORE_TRANSCRIPTS opts in; ``forget_transcripts`` deletes lines
older than the retention period (``TranscriptSweeper`` runs it periodically, on any
instance: it is one DELETE, harmless when two run it at once). Call search matches the
digits of a number against the caller ID and the callback numbers of the call's
messages. Nothing here logs what was said, a name or a number.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.logs import kv
from bot.stall import pause
from bot.store import schema as s
from bot.store.api import CALL_OUTCOMES, CallRecord, StoredMessage, TranscriptLine, Transfer, TurnRecord

log = logging.getLogger("bot.store.transcripts")
LIVE = "live"  # the outcome filter for calls still in progress (no outcome yet)


def number_digits(raw: str) -> str:
    """What a search by number matches: its digits ("(555) 867-5309" -> "5558675309")."""
    return re.sub(r"[^0-9]", "", raw)


def _digits_of(col: Any) -> Any:
    for sep in ("+", "-", " ", "(", ")", "."):
        col = sa.func.replace(col, sep, "")
    return col


def call_record(r: Any, transcript: Sequence[TranscriptLine] = ()) -> CallRecord:
    """A ``calls`` row as a CallRecord."""
    transfer = Transfer(r.transfer_purpose, r.transfer_to or "") if r.transfer_purpose else None
    return CallRecord(
        call_sid=r.call_sid, stream_sid=r.stream_sid, caller=r.caller, started_at=r.started_at, ended_at=r.ended_at,
        outcome=r.outcome, ended_by=r.ended_by, turns=tuple(TurnRecord(**t) for t in (r.turns or [])),
        transfer=transfer, transcript=tuple(transcript),
    )


class TranscriptRows:
    """For ``SqlStore`` (uses its engine)."""

    engine: AsyncEngine

    async def _write_transcript(self, conn: AsyncConnection, call_sid: str, lines: Sequence[TranscriptLine]) -> None:
        if lines:
            await conn.execute(s.transcript_lines.insert(), [
                dict(call_sid=call_sid, seq=i, turn=ln.turn, at=ln.at, speaker=ln.speaker, prompt=ln.prompt, text=ln.text,
                     interrupted=ln.interrupted)
                for i, ln in enumerate(lines)
            ])

    async def _transcript(self, conn: AsyncConnection, call_sid: str) -> list[TranscriptLine]:
        t = s.transcript_lines.c
        q = sa.select(t.turn, t.at, t.speaker, t.text, t.prompt, t.interrupted).where(t.call_sid == call_sid).order_by(t.seq)
        return [TranscriptLine(*r) for r in (await conn.execute(q)).all()]

    async def forget_transcripts(self, *, before: float) -> int:
        """A call's whole transcript goes at once: by when the call started (a line's own
        time only for a line whose call record is gone)."""
        t = s.transcript_lines.c
        old_calls = sa.select(s.calls.c.call_sid).where(s.calls.c.started_at < before)
        async with self.engine.begin() as conn:
            res = await conn.execute(s.transcript_lines.delete().where(sa.or_(t.call_sid.in_(old_calls), t.at < before)))
        return int(res.rowcount or 0)

    async def find_calls(self, *, number: str = "", outcome: str | None = None, limit: int = 100) -> list[CallRecord]:
        c = s.calls.c
        q = sa.select(s.calls).order_by(c.started_at.desc()).limit(limit)
        if outcome == LIVE:
            q = q.where(c.outcome.is_(None))
        elif outcome is not None:
            if outcome not in CALL_OUTCOMES:
                raise ValueError(f"outcome: expected one of {', '.join((*CALL_OUTCOMES, LIVE))}")
            q = q.where(c.outcome == outcome)
        digits = number_digits(number)
        if digits:  # digits only: nothing in the pattern is a LIKE wildcard
            pattern = f"%{digits}%"
            m = s.messages.c
            callback = sa.select(m.call_sid).where(_digits_of(m.callback_number).like(pattern))
            q = q.where(sa.or_(_digits_of(c.caller).like(pattern), c.call_sid.in_(callback)))
        async with self.engine.connect() as conn:
            return [call_record(r) for r in (await conn.execute(q)).all()]

    async def messages_of_call(self, call_sid: str) -> list[StoredMessage]:
        m = s.messages.c
        q = sa.select(m.id, m.created_at, m.call_sid, m.caller, m.name, m.callback_number, m.about, m.urgent, m.status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.where(m.call_sid == call_sid).order_by(m.id))).all()
        return [StoredMessage(*r) for r in rows]


class TranscriptSweeper:
    """Deletes stored transcripts older than ``days``, at start and then every ``every_s``.
    ``clock``: unix seconds (tests script it)."""

    def __init__(self, store: TranscriptRows, days: int, *, every_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.store, self.days, self.every_s, self.clock = store, days, every_s, clock

    async def sweep(self) -> int:
        gone = await self.store.forget_transcripts(before=self.clock() - self.days * 86400)
        if gone:
            log.info("old transcripts deleted", extra=kv(lines=gone, retention_days=self.days))
        return gone

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep now and every ``every_s`` until ``stopping`` is set (never inside a query)."""
        while not stopping.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - the database is down: try again next time, never die
                log.error("transcript sweep failed", extra=kv(error=type(exc).__name__))
            await pause(stopping, self.every_s)
