"""Live calls and draft messages under a lease, and what happens when their owner dies.

A process owns the call records it started and the drafts (incomplete messages of live
calls) it saved, under a lease in the store that ``heartbeat`` renews. When a process is
killed its leases run out; ``reap`` (run by every instance at start-up and periodically)
then closes each open record with outcome ``lost`` and tells the owner of each caller cut
off: a draft is notified as an incomplete message, a call that left no message as a
``lost_call``. Every step is a conditional update (``... WHERE notified_at IS NULL``,
``... WHERE ended_at IS NULL``), so whichever instance gets there first does it, once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

from bot.logs import kv
from bot.store import schema as s
from bot.store.sql import SqlStore

log = logging.getLogger("bot.store.leases")

LEGACY_OPEN_S = 6 * 3600  # a record opened before leases existed (lease_until NULL): lost after this


@dataclass(frozen=True)
class Reaped:
    calls: int = 0  # records closed as lost
    drafts: int = 0  # drafts notified as incomplete messages


async def heartbeat(store: SqlStore) -> None:
    """Renew the leases of this process's live calls and drafts (two statements, however
    many; none while it holds nothing)."""
    if not store.owned:
        return
    until = time.time() + store.lease_s
    async with store.engine.begin() as conn:
        await conn.execute(s.calls.update().where(s.calls.c.owner == store.owner, s.calls.c.ended_at.is_(None)).values(lease_until=until))
        await conn.execute(
            s.messages.update().where(s.messages.c.owner == store.owner, s.messages.c.notified_at.is_(None)).values(lease_until=until)
        )


async def reap(store: SqlStore) -> Reaped:
    """Close what dead owners left: drafts first (notified as incomplete), then the call
    records (outcome lost; a lost_call notice when the caller left no message)."""
    now = time.time()
    m, c = s.messages.c, s.calls.c
    dead_draft = sa.and_(m.notified_at.is_(None), m.lease_until < now)
    dead_call = sa.and_(c.ended_at.is_(None), sa.or_(c.lease_until < now, sa.and_(c.lease_until.is_(None), c.started_at < now - LEGACY_OPEN_S)))
    async with store.engine.connect() as conn:
        drafts = (await conn.execute(sa.select(m.id).where(dead_draft))).scalars().all()
        calls = (await conn.execute(sa.select(c.call_sid).where(dead_call))).scalars().all()
    n_drafts = n_calls = 0
    for mid in drafts:
        async with store.engine.begin() as conn:
            res = await conn.execute(
                s.messages.update().where(m.id == mid, dead_draft).values(notified_at=now, owner=None, lease_until=None, updated_at=now)
            )
            if res.rowcount == 1:
                await store.notify_message(conn, int(mid), now, cut_off=True)
                n_drafts += 1
    for sid in calls:
        async with store.engine.begin() as conn:
            res = await conn.execute(
                s.calls.update().where(c.call_sid == sid, dead_call).values(ended_at=now, outcome="lost", ended_by="lost", lease_until=None)
            )
            if res.rowcount != 1:
                continue  # another instance got there first
            n_calls += 1
            left = (await conn.execute(sa.select(sa.func.count()).select_from(s.messages).where(m.call_sid == sid))).scalar_one()
            if not left:
                row = (await conn.execute(sa.select(c.caller, c.started_at).where(c.call_sid == sid))).one()
                payload = {"event": "lost_call", "call": {"call_sid": sid, "caller": row.caller, "started_at": row.started_at}}
                await store.enqueue(conn, "lost", sid, None, sid, store.notify.targets, payload, now)
        log.warning("call lost: its process stopped", extra=kv(call_sid=sid))
    if n_drafts or n_calls:
        log.warning("reaped what stopped processes left", extra=kv(calls=n_calls, drafts=n_drafts))
    return Reaped(n_calls, n_drafts)
