"""What one call's requests must agree on, whichever process or instance answers each.

Twilio sends a call's voice webhook, its media websocket and its ``<Connect action>``
request on separate connections; behind a balancer (or the kernel's spreading over
WORKERS) each may reach another process. So:

- ``admit_stream``: a CallSid's media stream is admitted once, ever: one row per
  CallSid, insert-or-fail (a primary key on SQLite and PostgreSQL alike). A replayed
  webhook or a second stream for the same call finds the row.
- ``put_action`` / ``take_action``: what the ``<Connect action>`` request answers (the
  transfer's ``<Dial>``, or ``<Hangup/>`` after a goodbye) waits here until any process
  takes it, once; it expires unasked after ``ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import schema as s

# what a store that cannot answer raises: SQLAlchemy's errors (the driver's wrapped), or the
# connection's own (OSError, TimeoutError among them) where the driver lets them through
STORE_DOWN: tuple[type[Exception], ...] = (OSError, SQLAlchemyError)

ACTION_TTL_S = 300.0  # Twilio asks for the <Connect action> within seconds of the stream's end


class CallGate:
    def __init__(self, engine: AsyncEngine, *, ttl_s: float = ACTION_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.ttl_s, self.clock = engine, ttl_s, clock

    async def admit_stream(self, call_sid: str) -> bool:
        """True for the first stream of ``call_sid`` anywhere; False ever after."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(s.stream_admissions.insert().values(call_sid=call_sid, admitted_at=self.clock()))
        except IntegrityError:
            return False
        return True

    async def stream_admitted(self, call_sid: str) -> bool:
        async with self.engine.connect() as conn:
            q = sa.select(s.stream_admissions.c.call_sid).where(s.stream_admissions.c.call_sid == call_sid)
            return (await conn.execute(q)).first() is not None

    async def admitted_among(self, call_sids: list[str]) -> set[str]:
        """Which of ``call_sids`` had their stream admitted (anywhere)."""
        if not call_sids:
            return set()
        async with self.engine.connect() as conn:
            q = sa.select(s.stream_admissions.c.call_sid).where(s.stream_admissions.c.call_sid.in_(call_sids))
            return {r[0] for r in (await conn.execute(q)).all()}

    async def put_action(self, call_sid: str, twiml: str) -> None:
        """What the ``<Connect action>`` request of ``call_sid`` will answer (replacing any before)."""
        now = self.clock()
        t = s.pending_actions
        async with self.engine.begin() as conn:
            await conn.execute(t.delete().where(sa.or_(t.c.call_sid == call_sid, t.c.expires_at < now)))
            await conn.execute(t.insert().values(call_sid=call_sid, twiml=twiml, expires_at=now + self.ttl_s))

    async def take_action(self, call_sid: str) -> str | None:
        """The answer waiting for ``call_sid``, removed; None if there is none (unknown or expired)."""
        t = s.pending_actions
        async with self.engine.begin() as conn:
            row = (await conn.execute(t.delete().where(t.c.call_sid == call_sid).returning(t.c.twiml, t.c.expires_at))).first()
        if row is None or row.expires_at < self.clock():
            return None
        return str(row.twiml)

    async def pending_count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(s.pending_actions))).scalar_one())
