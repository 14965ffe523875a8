"""The store and the outbox deliverer as an app resource (cleanup_ctx).

The store opens (and migrates) before the server takes calls and closes after the
last call is recorded; the deliverer and the transcript sweep run beside it for the
server's whole life.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import exc as sa_exc

from bot.logs import kv
from bot.stall import pause
from bot.store import open_store
from bot.store.calls import FinishedCall, ended_by, outcome_of, turn_records
from bot.store.deliver import Deliverer
from bot.store.delivery_state import DeliverySummary
from bot.store.leases import heartbeat, reap
from bot.store.notify import NotifyConfig
from bot.store.saver import MessageSaver
from bot.store.sql import SqlStore
from bot.store.transcripts import TranscriptSweeper
from handlers.state import METRICS, SETTINGS

log = logging.getLogger("handlers.storage")


@dataclass
class DeliveryView:
    summary: DeliverySummary = field(default_factory=DeliverySummary)
    checked_at: float | None = None  # unix seconds; None: not read yet

STORE: web.AppKey[SqlStore] = web.AppKey("store")
NOTIFY = web.AppKey("notify", NotifyConfig)  # who is told; the business profile maps to it
PENDING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("pending_records")  # call-record writes still running
SAVER = web.AppKey("saver", MessageSaver)  # message saves: retried, they outlive the call
DELIVERY = web.AppKey("delivery", DeliveryView)  # the outbox in sum, refreshed by _keep (for /healthz)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    try:
        store = await open_store(settings, app[NOTIFY])
    except (OSError, ValueError, sa_exc.SQLAlchemyError) as exc:  # asyncpg's errors arrive wrapped or as OSError
        where = "DATABASE_URL" if settings.database_url else f"DATA_DIR ({settings.data_dir})"
        raise RuntimeError(f"cannot open the message store ({where}): {type(exc).__name__}: {str(exc)[:200]}") from None
    app[STORE] = store
    app[PENDING] = set()
    app[SAVER] = MessageSaver(store)
    app[DELIVERY] = DeliveryView()
    log.info("store ready", extra=kv(backend=store.dialect, targets=len(app[NOTIFY].targets), urgent_targets=len(app[NOTIFY].urgent_targets)))
    told = app[NOTIFY].targets or app[NOTIFY].urgent_targets
    # this process's own saves and retries wake the deliverer when due; the poll finds rows
    # another instance left (slower still with no targets here: an earlier configuration's)
    deliverer = Deliverer(store, settings, poll_s=5.0 if told else 30.0)
    task = asyncio.get_running_loop().create_task(deliverer.run(), name="outbox-deliverer")
    # stored transcripts past TRANSCRIPT_RETENTION_DAYS go, even once STORE_TRANSCRIPTS is off again
    # the sweep and the upkeep stop between their queries (``stopping``), never inside one; a
    # query cancelled anyway (the deliverer, a dropped request) is safe: bot/store/sqlite_driver.py
    stopping = asyncio.Event()
    sweep = asyncio.get_running_loop().create_task(
        TranscriptSweeper(store, settings.transcript_retention_days).run(stopping), name="transcript-sweep")
    keeper = asyncio.get_running_loop().create_task(_keep(app, store, stopping), name="store-keeper")
    yield
    stopping.set()
    await app[SAVER].close(timeout=10.0)
    task.cancel()
    await asyncio.wait({task, keeper, sweep, *app[PENDING]}, timeout=5.0)
    for t in (keeper, sweep):  # still in a query after 5 s: the database hangs; cancel it after all
        t.cancel()
    await store.close()



async def _keep(app: web.Application, store: SqlStore, stopping: asyncio.Event) -> None:
    """Every third of CALL_LEASE_S (at most 15 s), from start-up: renew this process's
    leases, close what dead processes left (bot/store/leases.py), and read the outbox's
    state for /healthz and /metrics. A database error is logged and tried next time."""
    every = min(15.0, store.lease_s / 3)
    while not stopping.is_set():
        for step, work in (("heartbeat", heartbeat), ("reap", reap)):
            try:
                await work(store)
            except Exception as exc:  # noqa: BLE001 - the upkeep loop outlives a database outage
                log.error("store upkeep failed", extra=kv(step=step, error=type(exc).__name__))
        try:
            view = app[DELIVERY]
            view.summary, view.checked_at = await store.delivery_summary(), time.time()
            app[METRICS].update_delivery(view.summary)
        except Exception as exc:  # noqa: BLE001 - as above
            log.error("store upkeep failed", extra=kv(step="delivery", error=type(exc).__name__))
        if await pause(stopping, every):
            return


def record_start(app: web.Application, *, call_sid: str, stream_sid: str, caller: str) -> asyncio.Task[None]:
    """The call record's start, written in its own task: the greeting never waits for
    the database (a busy SQLite file or a slow PostgreSQL would delay it). The end of
    the record waits for this task (``record_end(after=...)``); the store waits for
    both before it closes. A storage failure is logged, never ends the call."""
    return _pending(app, _record_start(app, call_sid=call_sid, stream_sid=stream_sid, caller=caller))


def _pending(app: web.Application, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro)
    app[PENDING].add(task)
    task.add_done_callback(app[PENDING].discard)
    return task


async def _record_start(app: web.Application, *, call_sid: str, stream_sid: str, caller: str) -> None:
    try:
        await app[STORE].call_started(call_sid=call_sid, stream_sid=stream_sid, caller=caller, started_at=time.time())
    except Exception as exc:  # noqa: BLE001 - a call goes on without its record; the lease sweep settles it
        log.error("call record not started", extra=kv(call_sid=call_sid, error=type(exc).__name__))


async def record_end(
    app: web.Application, session: FinishedCall | None, *, call_sid: str, failed: bool, after: asyncio.Task[None] | None = None,
) -> None:
    """The call record's end, once its start (``after``) is written. It runs as its own
    task (awaited through a shield): the handler is often being cancelled as the
    caller's socket goes, and the record must still be written; the store waits for
    such writes before it closes."""
    await asyncio.shield(_pending(app, _record_end(app, session, call_sid=call_sid, failed=failed, after=after)))


async def _record_end(
    app: web.Application, session: FinishedCall | None, *, call_sid: str, failed: bool, after: asyncio.Task[None] | None,
) -> None:
    if after is not None:
        await asyncio.wait({after})  # its own failure is logged there
    outcome = outcome_of(session, failed=failed)
    try:
        await app[STORE].call_ended(
            call_sid=call_sid, ended_at=time.time(), outcome=outcome,
            ended_by=ended_by(session, failed=failed), turns=turn_records(session) if session else [],
            transcript=session.transcript if session else (), transfer=session.transfer if session else None,
        )
    except Exception as exc:  # noqa: BLE001 - as above
        log.error("call record not ended", extra=kv(call_sid=call_sid, outcome=outcome, error=type(exc).__name__))
