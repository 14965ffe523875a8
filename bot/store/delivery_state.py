"""What became of the notifications: per message and channel (the CLI, the console), and
in sum (metrics, health). Read from the outbox, so every process and instance sees the same."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.redact import mask_number
from bot.store import schema as s


@dataclass(frozen=True)
class Delivery:
    channel: str  # webhook, email, sms
    target: str  # shown masked for SMS
    state: str  # delivered, pending (not tried yet, or sending), failing (the last try failed; retried)
    attempts: int
    last_error: str | None
    failing_since: float | None  # unix seconds: the first failure of the current run


@dataclass(frozen=True)
class DeliverySummary:
    pending: int = 0  # undelivered, the last try (if any) did not fail
    failing: int = 0  # undelivered, the last try failed
    delivered: int = 0
    oldest_undelivered_s: float = 0.0  # age of the oldest undelivered notification
    failing_for_s: float = 0.0  # how long the longest-failing one has failed


def _state(delivered_at: float | None, last_error: str | None) -> str:
    if delivered_at is not None:
        return "delivered"
    return "failing" if last_error else "pending"


async def delivery_of(engine: AsyncEngine, message_ids: Sequence[int]) -> dict[int, list[Delivery]]:
    """message id -> its notifications, in the order they were queued."""
    o = s.outbox.c
    out: dict[int, list[Delivery]] = {}
    if not message_ids:
        return out
    q = (
        sa.select(o.message_id, o.channel, o.target, o.attempts, o.delivered_at, o.last_error, o.failed_since)
        .where(o.message_id.in_(list(message_ids))).order_by(o.id)
    )
    async with engine.connect() as conn:
        for r in (await conn.execute(q)).all():
            target = mask_number(r.target) if r.channel == "sms" else r.target
            out.setdefault(int(r.message_id), []).append(
                Delivery(r.channel, target, _state(r.delivered_at, r.last_error), int(r.attempts), r.last_error, r.failed_since)
            )
    return out


async def summary(engine: AsyncEngine, now: float | None = None) -> DeliverySummary:
    now = time.time() if now is None else now
    o = s.outbox.c
    undelivered = o.delivered_at.is_(None)
    q = sa.select(
        sa.func.count().filter(sa.and_(undelivered, o.last_error.is_(None))),
        sa.func.count().filter(sa.and_(undelivered, o.last_error.is_not(None))),
        sa.func.count().filter(o.delivered_at.is_not(None)),
        sa.func.min(o.created_at).filter(undelivered),
        sa.func.min(o.failed_since).filter(sa.and_(undelivered, o.last_error.is_not(None))),
    )
    async with engine.connect() as conn:
        pending, failing, delivered, oldest, failing_since = (await conn.execute(q)).one()
    return DeliverySummary(
        pending=int(pending), failing=int(failing), delivered=int(delivered),
        oldest_undelivered_s=max(0.0, now - oldest) if oldest is not None else 0.0,
        failing_for_s=max(0.0, now - failing_since) if failing_since is not None else 0.0,
    )
