"""One schema for SQLite and PostgreSQL, and the versioned steps that build it.

Each step runs once, in order, in its own transaction, and bumps ``schema_version``.
A new column or index is a new step appended to ``STEPS``; a shipped step is never
edited. On PostgreSQL an advisory lock serialises instances that start together; on
SQLite the first write of the step takes the database lock.
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

meta = sa.MetaData()

messages = sa.Table(
    "messages", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("call_sid", sa.String(64), nullable=False),
    sa.Column("caller", sa.String(200), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("callback_number", sa.String(64), nullable=False),
    sa.Column("about", sa.Text, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # new, incomplete, handled
    sa.Column("handled_at", sa.Float),
    # _step_message_uids: the message's global identity (idempotency keys are built from it),
    # and while it is a draft (an incomplete message of a live call) the process that owns it
    sa.Column("uid", sa.String(36)),
    sa.Column("updated_at", sa.Float),
    sa.Column("notified_at", sa.Float),  # its notifications were queued (None: still a draft)
    sa.Column("owner", sa.String(80)),
    sa.Column("lease_until", sa.Float),  # past it with notified_at None: its owner is gone
)

calls = sa.Table(
    "calls", meta,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("stream_sid", sa.String(64), nullable=False),
    sa.Column("caller", sa.String(200), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("outcome", sa.String(16)),
    sa.Column("ended_by", sa.String(16)),
    sa.Column("turns", sa.JSON, nullable=False),  # [TurnRecord as a dict], stage errors in each
    sa.Column("transfer_purpose", sa.String(32)),  # from _transcripts_and_transfers on
    sa.Column("transfer_to", sa.String(64)),  # masked
    # _step_message_uids: the live call's owner and its lease (heartbeat); past the lease an
    # open record is closed as "lost" by any instance
    sa.Column("owner", sa.String(80)),
    sa.Column("lease_until", sa.Float),
)

outbox = sa.Table(
    "outbox", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idem_key", sa.String(120), nullable=False, unique=True),  # message/call + channel + target
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id")),  # None: a missed-call notice
    sa.Column("call_sid", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # webhook, email, sms
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # everything the channel sends
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float),  # a lease: past it, a dead claimer's row is due again
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("delivered_at", sa.Float),
    sa.Column("last_error", sa.String(200)),
    sa.Column("message_uid", sa.String(36)),  # _step_message_uids: the message's global identity
    sa.Column("failed_since", sa.Float),  # _step_message_uids: first failure of the current run of failures
)

# What was said on a call, one row a line (only with STORE_TRANSCRIPTS); the retention
# sweep deletes rows by ``at``, so nothing else has to be rewritten.
transcript_lines = sa.Table(
    "transcript_lines", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_sid", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # order within the call
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("speaker", sa.String(8), nullable=False),  # caller, bot
    sa.Column("prompt", sa.String(16)),  # the bot said a fixed prompt: its name
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("interrupted", sa.Boolean, nullable=False, default=False),  # a reply the caller barged in on
)

# console sessions ended by logout, until their cookie would have expired anyway: the
# cookie is signed, so a copy of it stays valid to every process and instance unless
# they all can see it was revoked (handlers/session_auth.py)
revoked_sessions = sa.Table(
    "revoked_sessions", meta,
    sa.Column("session_id", sa.String(64), primary_key=True),  # sha256 of the cookie's signed part, hex
    sa.Column("expires_at", sa.Float, nullable=False),
)

# What a call's webhook, media stream and <Connect action> must agree on, whichever process
# or instance answers each (bot/store/shared.py): a CallSid's stream is admitted once, ever;
# what the <Connect action> request answers waits here for whoever gets it.
stream_admissions = sa.Table(
    "stream_admissions", meta,
    sa.Column("call_sid", sa.String(64), primary_key=True),  # insert-or-fail: one stream per CallSid
    sa.Column("admitted_at", sa.Float, nullable=False),
)

pending_actions = sa.Table(
    "pending_actions", meta,
    sa.Column("call_sid", sa.String(64), primary_key=True),
    sa.Column("twiml", sa.Text, nullable=False),  # <Dial> for a transfer, <Hangup/> for a goodbye
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

schema_version = sa.Table("schema_version", meta, sa.Column("version", sa.Integer, nullable=False))


async def _v1(conn: AsyncConnection) -> None:
    for table in (messages, calls, outbox):
        await conn.run_sync(table.create)
    await conn.execute(sa.text("CREATE INDEX ix_messages_created ON messages (created_at)"))
    await conn.execute(sa.text("CREATE INDEX ix_calls_started ON calls (started_at)"))
    await conn.execute(sa.text("CREATE INDEX ix_outbox_due ON outbox (delivered_at, due_at)"))


async def _transcripts_and_transfers(conn: AsyncConnection) -> None:
    """Stored transcripts (STORE_TRANSCRIPTS) and where a call was transferred."""
    await conn.run_sync(transcript_lines.create)
    await conn.execute(sa.text("CREATE INDEX ix_transcript_call ON transcript_lines (call_sid, seq)"))
    await conn.execute(sa.text("CREATE INDEX ix_transcript_at ON transcript_lines (at)"))
    # a new database got the columns from _v1 (it creates ``calls`` as declared now)
    have = {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns("calls"))}
    for name, width in (("transfer_purpose", 32), ("transfer_to", 64)):
        if name not in have:
            await conn.execute(sa.text(f"ALTER TABLE calls ADD COLUMN {name} VARCHAR({width})"))



_UID_COLUMNS = {
    "messages": ("uid", "updated_at", "notified_at", "owner", "lease_until"),
    "calls": ("owner", "lease_until"),
    "outbox": ("message_uid", "failed_since"),
}


async def _step_message_uids(conn: AsyncConnection) -> None:
    """Issue 20: a globally unique ``uid`` per message (a UUID4, idempotency keys are built
    from it, never from a row id), drafts and live calls owned under a lease, and when a
    notification started failing. ``_v1`` builds its tables from the current metadata, so
    on a new database the columns already exist: only the missing ones are added."""
    have = await conn.run_sync(lambda c: {t: {col["name"] for col in sa.inspect(c).get_columns(t)} for t in _UID_COLUMNS})
    for table, names in _UID_COLUMNS.items():
        for name in names:
            if name not in have[table]:
                col = meta.tables[table].c[name]
                await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {col.type.compile(conn.dialect)}"))
    ids = (await conn.execute(sa.select(messages.c.id).where(messages.c.uid.is_(None)))).scalars().all()
    now = time.time()
    for mid in ids:  # messages kept before this step: their notifications were queued with them
        await conn.execute(messages.update().where(messages.c.id == mid).values(uid=str(uuid.uuid4()), notified_at=now, updated_at=now))
    await conn.execute(sa.text("CREATE UNIQUE INDEX IF NOT EXISTS ix_messages_uid ON messages (uid)"))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_messages_call ON messages (call_sid)"))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_messages_draft ON messages (notified_at, lease_until)"))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_calls_open ON calls (ended_at, lease_until)"))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_outbox_message ON outbox (message_id)"))


async def _revoked_sessions(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: revoked_sessions.create(c, checkfirst=True))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_revoked_sessions_expiry ON revoked_sessions (expires_at)"))


async def _step_shared_state(conn: AsyncConnection) -> None:
    """Stream admissions and pending <Connect action> answers, shared by processes and instances."""
    await conn.run_sync(lambda c: meta.create_all(c, tables=[stream_admissions, pending_actions], checkfirst=True))


STEPS = [_v1, _transcripts_and_transfers, _step_message_uids, _revoked_sessions, _step_shared_state]  # version n is STEPS[n - 1]
VERSION = len(STEPS)


async def migrate(engine: AsyncEngine) -> int:
    """Bring the database to ``VERSION``; return the version it was at."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7263001)"))
        await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
        found: int | None = (await conn.execute(sa.select(schema_version.c.version))).scalar()
        if found is None:
            await conn.execute(schema_version.insert().values(version=0))
            found = 0
        if found > VERSION:
            raise RuntimeError(f"the database is at schema version {found}, newer than this code ({VERSION}); upgrade phonebot")
        for version in range(found + 1, VERSION + 1):
            await STEPS[version - 1](conn)
            await conn.execute(schema_version.update().values(version=version))
    return found
