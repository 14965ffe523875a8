"""The ``Store`` on SQLAlchemy Core: SQLite (WAL, in DATA_DIR) or PostgreSQL.

SQLite transactions start with BEGIN IMMEDIATE, so a read-then-write (a claim, a
migration) cannot interleave with another process's. On PostgreSQL the outbox claim
locks its rows with FOR UPDATE SKIP LOCKED, so instances never wait on each other.
Nothing here logs a message's content, a name or a number.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store import schema as s
from bot.store import sqlite_driver
from bot.store.api import MESSAGE_STATUSES, CallRecord, NewMessage, StoredMessage, TranscriptLine, Transfer, TurnRecord
from bot.store.delivery_state import Delivery, DeliverySummary, delivery_of, summary
from bot.store.notify import NotifyConfig, Target, idem_key
from bot.store.transcripts import TranscriptRows
from bot.store.transcripts import call_record as _call

SQLITE_NAME = "phonebot.sqlite3"
# aiosqlite's DEBUG records carry each statement's parameters (names, numbers): never log them
logging.getLogger("aiosqlite").setLevel(logging.INFO)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idem_key: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int  # including this one


def engine_url(database_url: str, data_dir: Path) -> str:
    if not database_url:
        return f"sqlite+aiosqlite:///{Path(data_dir) / SQLITE_NAME}"
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url[len(prefix):]
    raise ValueError("DATABASE_URL: expected postgresql://user:password@host:port/dbname")


def _private_sqlite(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for suffix in ("", "-wal", "-shm"):
        path = data_dir / (SQLITE_NAME + suffix)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)


class SqlStore(TranscriptRows):
    def __init__(self, engine: AsyncEngine, notify: NotifyConfig | None = None, *, lease_s: float = 30.0) -> None:
        self.engine = engine
        self.notify = notify or NotifyConfig()
        # this process, as the owner of its live calls and draft messages; their leases are
        # renewed by ``heartbeat`` (bot/store/leases.py), and past them ``reap`` closes them
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_s = lease_s
        self.owned: set[str] = set()  # CallSids and draft uids this process holds leases on (heartbeat skips when empty)
        self.dialect = engine.dialect.name
        self.outbox_changed = asyncio.Event()  # wakes this process's deliverer
        self._records: list[tuple[Any, dict[str, Any], asyncio.Future[None]]] = []  # call records waiting for the writer
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, *, database_url: str = "", data_dir: Path = Path("var"), notify: NotifyConfig | None = None, lease_s: float = 30.0
    ) -> SqlStore:
        url = engine_url(database_url, Path(data_dir))
        if url.startswith("sqlite"):
            _private_sqlite(Path(data_dir))
            path = Path(data_dir) / SQLITE_NAME
            engine = create_async_engine(url, async_creator=lambda: sqlite_driver.connector(path, timeout=10))

            @event.listens_for(engine.sync_engine, "connect")
            def _connect(dbapi_conn: Any, _rec: object) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine.sync_engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
        await s.migrate(engine)
        return cls(engine, notify, lease_s=lease_s)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.wait({self._writer})
        await self.engine.dispose()

    # --- messages -----------------------------------------------------------------------
    async def save_message(self, msg: NewMessage, *, final: bool = True) -> int:
        """Insert or update the message ``msg.uid`` (a new UUID4 if it has none); return its
        id. Complete, or ``final``: its notifications are queued in the same transaction
        (idempotency keys from the uid). Otherwise it is a draft, owned by this process
        under a lease (a dead owner's draft is notified by ``reap``). Idempotent: a retry
        whose first try committed, or a draft of a message already notified, queues
        nothing twice; a complete message is never made incomplete again."""
        uid = msg.uid or str(uuid.uuid4())
        now = time.time()
        m = s.messages.c
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(s.messages).values(
                    uid=uid, created_at=now, updated_at=now, call_sid=msg.call_sid, caller=msg.caller, name=msg.name,
                    callback_number=msg.callback_number, about=msg.about, urgent=msg.urgent, status="incomplete",
                    owner=self.owner, lease_until=now + self.lease_s,
                ).on_conflict_do_nothing(index_elements=["uid"])
            )
            row = (await conn.execute(sa.select(m.id, m.status, m.notified_at).where(m.uid == uid))).one()
            if row.status != "incomplete":
                return int(row.id)  # complete already (this is a retry, or a late draft)
            values: dict[str, Any] = dict(
                name=msg.name, callback_number=msg.callback_number, about=msg.about, urgent=msg.urgent, updated_at=now,
                status="new" if msg.complete else "incomplete",
            )
            if row.notified_at is None and (msg.complete or final):
                values.update(notified_at=now, owner=None, lease_until=None)
            await conn.execute(s.messages.update().where(m.id == row.id).values(**values))
            if "notified_at" in values:
                await self.notify_message(conn, int(row.id), now)
        if "notified_at" in values:
            self.owned.discard(uid)
        elif row.notified_at is None:
            self.owned.add(uid)
        return int(row.id)

    def _insert(self, table: sa.Table) -> Any:
        """INSERT with ON CONFLICT, in this backend's dialect."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    async def notify_message(self, conn: AsyncConnection, mid: int, now: float, *, cut_off: bool = False) -> None:
        """Queue the notifications of message ``mid`` as it now stands (``cut_off``: its
        call's process died; bot/store/leases.py)."""
        r = (await conn.execute(sa.select(*_MSG_COLS).where(s.messages.c.id == mid))).one()
        msg = StoredMessage(**r._mapping)
        payload = {"event": "message", "message": {
            "id": msg.id, "uid": msg.uid, "status": msg.status, "call_sid": msg.call_sid, "caller": msg.caller, "name": msg.name,
            "callback_number": msg.callback_number, "about": msg.about, "urgent": msg.urgent, "created_at": msg.created_at,
            **({"cut_off": True} if cut_off else {}),
        }}
        await self.enqueue(conn, "message", msg.uid, mid, msg.call_sid, self.notify.for_message(msg.urgent), payload, now)

    async def messages(self, *, since: float | None = None, status: str | None = None, limit: int = 100) -> list[StoredMessage]:
        q = sa.select(*_MSG_COLS).order_by(s.messages.c.id.desc()).limit(limit)
        if since is not None:
            q = q.where(s.messages.c.created_at >= since)
        if status is not None:
            if status not in MESSAGE_STATUSES:
                raise ValueError(f"status: expected one of {', '.join(MESSAGE_STATUSES)}")
            q = q.where(s.messages.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [StoredMessage(**r._mapping) for r in rows]

    async def message(self, message_id: int) -> StoredMessage | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(*_MSG_COLS).where(s.messages.c.id == message_id))).first()
        return StoredMessage(**row._mapping) if row else None

    async def mark_handled(self, message_id: int) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                s.messages.update().where(s.messages.c.id == message_id, s.messages.c.status != "handled")
                .values(status="handled", handled_at=time.time())
            )
        return res.rowcount == 1

    # --- console sessions ended by logout ------------------------------------------------
    async def revoke_session(self, session_id: str, expires_at: float) -> None:
        now = time.time()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(s.revoked_sessions.delete().where(s.revoked_sessions.c.expires_at < now))  # the list stays short
                found = (await conn.execute(sa.select(s.revoked_sessions.c.session_id)
                                            .where(s.revoked_sessions.c.session_id == session_id))).first()
                if found is None:
                    await conn.execute(s.revoked_sessions.insert().values(session_id=session_id, expires_at=expires_at))
        except sa.exc.IntegrityError:  # another process revoked it at the same moment: revoked either way
            pass

    async def session_revoked(self, session_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(s.revoked_sessions.c.session_id)
                                      .where(s.revoked_sessions.c.session_id == session_id))).first()
        return row is not None

    # --- call records -------------------------------------------------------------------
    # Call records are written in batches: every start and end waiting when the writer
    # runs goes in one transaction, each record in its own savepoint (a bad one fails
    # alone). Hundreds of calls starting together then cost one commit instead of
    # hundreds of connections queueing for SQLite's single writer (at 400 calls that
    # queue timed out and records were lost).
    async def call_started(self, *, call_sid: str, stream_sid: str, caller: str, started_at: float) -> None:
        self.owned.add(call_sid)
        await self._record(self._call_started, dict(call_sid=call_sid, stream_sid=stream_sid, caller=caller, started_at=started_at))

    async def call_ended(
        self, *, call_sid: str, ended_at: float, outcome: str, ended_by: str, turns: Sequence[TurnRecord],
        transcript: Sequence[TranscriptLine] = (), transfer: Transfer | None = None,
    ) -> None:
        self.owned.discard(call_sid)
        await self._record(self._call_ended, dict(call_sid=call_sid, ended_at=ended_at, outcome=outcome, ended_by=ended_by, turns=turns,
                                                  transcript=transcript, transfer=transfer))

    async def _record(self, write: Any, kw: dict[str, Any]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._records.append((write, kw, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_records())
        await asyncio.shield(fut)

    async def _write_records(self) -> None:
        while self._records:
            batch, self._records = self._records, []
            failed: dict[int, BaseException] = {}
            try:
                async with self.engine.begin() as conn:
                    for i, (write, kw, _fut) in enumerate(batch):
                        try:
                            async with conn.begin_nested():
                                await write(conn, **kw)
                        except Exception as exc:  # noqa: BLE001 - handed to the caller waiting for it
                            failed[i] = exc
            except Exception as exc:  # noqa: BLE001 - the commit failed: every record in it
                failed = dict.fromkeys(range(len(batch)), exc)
            for i, (_write, _kw, fut) in enumerate(batch):
                if fut.done():
                    continue
                if i in failed:
                    fut.set_exception(failed[i])
                else:
                    fut.set_result(None)

    async def _call_started(self, conn: AsyncConnection, *, call_sid: str, stream_sid: str, caller: str, started_at: float) -> None:
        await conn.execute(s.calls.insert().values(
            call_sid=call_sid, stream_sid=stream_sid, caller=caller, started_at=started_at, turns=[],
            owner=self.owner, lease_until=time.time() + self.lease_s,
        ))

    async def _call_ended(
        self, conn: AsyncConnection, *, call_sid: str, ended_at: float, outcome: str, ended_by: str, turns: Sequence[TurnRecord],
        transcript: Sequence[TranscriptLine] = (), transfer: Transfer | None = None,
    ) -> None:
        now = time.time()
        row = (await conn.execute(sa.select(s.calls.c.caller, s.calls.c.started_at).where(s.calls.c.call_sid == call_sid))).first()
        if row is None:
            raise KeyError(f"no call record for {call_sid}")
        await conn.execute(
            s.calls.update().where(s.calls.c.call_sid == call_sid)
            .values(ended_at=ended_at, outcome=outcome, ended_by=ended_by, turns=[asdict(t) for t in turns], lease_until=None,
                    transfer_purpose=transfer.purpose if transfer else None, transfer_to=transfer.to if transfer else None)
        )
        await self._write_transcript(conn, call_sid, transcript)
        if outcome == "abandoned" and self.notify.missed_calls:
            payload = {"event": "missed_call", "call": {"call_sid": call_sid, "caller": row.caller, "started_at": row.started_at}}
            await self.enqueue(conn, "missed", call_sid, None, call_sid, self.notify.targets, payload, now)

    async def calls(self, *, limit: int = 50) -> list[CallRecord]:
        q = sa.select(s.calls).order_by(s.calls.c.started_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_call(r) for r in (await conn.execute(q)).all()]

    async def call(self, call_sid: str) -> CallRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(s.calls).where(s.calls.c.call_sid == call_sid))).first()
            return _call(row, await self._transcript(conn, call_sid)) if row else None

    # --- the outbox ---------------------------------------------------------------------
    async def enqueue(self, conn: AsyncConnection, kind: str, ref: str, message_id: int | None, call_sid: str, targets: Sequence[Target], payload: dict[str, Any], now: float) -> None:
        """One row per target, keyed by (kind, ``ref``: a message's uid or a CallSid,
        target): a row already queued under that key stays as it is."""
        rows = [
            dict(idem_key=idem_key(kind, ref, t), message_id=message_id, message_uid=ref if kind == "message" else None,
                 call_sid=call_sid, channel=t.channel, target=t.address, payload=payload, created_at=now, due_at=now, attempts=0)
            for t in targets
        ]
        if rows:
            await conn.execute(self._insert(s.outbox).on_conflict_do_nothing(index_elements=["idem_key"]), rows)
            self.outbox_changed.set()

    async def claim_due(self, *, lease_s: float, limit: int = 10, busy: Sequence[str] = ()) -> list[OutboxItem]:
        """Lease up to ``limit`` due rows to this process. A row whose lease ran out (its
        claimer died mid-send) is due again. ``busy``: targets this process is already
        sending to as much as it will (their rows wait; the others' do not)."""
        now = time.time()
        o = s.outbox.c
        q = (
            sa.select(o.id).where(o.delivered_at.is_(None), o.due_at <= now, sa.or_(o.claimed_until.is_(None), o.claimed_until < now))
            .order_by(o.due_at).limit(limit)
        )
        if busy:
            q = q.where(o.target.not_in(list(busy)))
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(q)).all()]
            if not ids:
                return []
            await conn.execute(s.outbox.update().where(o.id.in_(ids)).values(claimed_until=now + lease_s, attempts=o.attempts + 1))
            rows = (await conn.execute(sa.select(o.id, o.idem_key, o.channel, o.target, o.payload, o.attempts).where(o.id.in_(ids)))).all()
        return [OutboxItem(*r) for r in rows]

    async def release(self, item_ids: Sequence[int]) -> None:
        """Give back rows claimed but not sent (their target was busy): due again at once,
        the claim's attempt not counted."""
        o = s.outbox.c
        async with self.engine.begin() as conn:
            await conn.execute(s.outbox.update().where(o.id.in_(list(item_ids))).values(claimed_until=None, attempts=o.attempts - 1))

    async def delivered(self, item_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(s.outbox.update().where(s.outbox.c.id == item_id).values(delivered_at=time.time(), claimed_until=None, last_error=None, failed_since=None))

    async def failed(self, item_id: int, *, retry_in: float, error: str) -> None:
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                s.outbox.update().where(s.outbox.c.id == item_id)
                .values(due_at=now + retry_in, claimed_until=None, last_error=error[:200],
                        failed_since=sa.func.coalesce(s.outbox.c.failed_since, now))
            )

    async def delivery(self, message_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """message id -> the state of each of its notifications (bot/store/delivery_state.py)."""
        return await delivery_of(self.engine, message_ids)

    async def delivery_summary(self) -> DeliverySummary:
        return await summary(self.engine)

    async def outbox_state(self) -> list[dict[str, Any]]:
        """Every row, for the console and tests: channel, target, attempts, delivered, error."""
        o = s.outbox.c
        q = sa.select(o.id, o.idem_key, o.message_id, o.call_sid, o.channel, o.target, o.attempts, o.due_at, o.delivered_at, o.last_error)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q.order_by(o.id))).all()]


_MSG_COLS = (
    s.messages.c.id, s.messages.c.created_at, s.messages.c.call_sid, s.messages.c.caller, s.messages.c.name,
    s.messages.c.callback_number, s.messages.c.about, s.messages.c.urgent, s.messages.c.status, s.messages.c.uid,
)
