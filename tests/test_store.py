"""The store on SQLite and PostgreSQL: messages, call records, the outbox and its claims."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest
import sqlalchemy as sa

from bot.store import NewMessage, NotifyConfig, SqlStore, TurnRecord, schema
from bot.store.notify import Target, TargetError, parse_targets

HOOK = Target("webhook", "https://hooks.example/x")
MAIL = Target("email", "owner@example.com")
ONCALL = Target("sms", "+15550001111")


@pytest.fixture
async def store(db_url, tmp_path):
    st = await SqlStore.open(database_url=db_url, data_dir=tmp_path / "data", notify=NotifyConfig((HOOK, MAIL), (ONCALL,)))
    yield st
    await st.close()


def msg(n: int = 1, **kw) -> NewMessage:
    base = dict(call_sid=f"CA{n:032d}", caller="+15551234567", name=f"Caller {n}", callback_number="5551234567", about="a quote")
    return NewMessage(**{**base, **kw})


async def test_message_roundtrip_status_and_handled(store):
    a = await store.save_message(msg(1))
    b = await store.save_message(msg(2, complete=False, urgent=True))
    got = await store.messages()
    assert [m.id for m in got] == [b, a]  # newest first
    assert got[0].status == "incomplete" and got[0].urgent is True and got[1].status == "new"
    assert got[1].name == "Caller 1" and got[1].callback_number == "5551234567" and got[1].call_sid == "CA" + "0" * 31 + "1"
    assert [m.id for m in await store.messages(status="incomplete")] == [b]
    assert await store.mark_handled(a) is True
    assert await store.mark_handled(a) is False  # already handled
    assert await store.mark_handled(9999) is False
    assert (await store.message(a)).status == "handled"
    assert await store.messages(since=time.time() + 60) == []
    with pytest.raises(ValueError):
        await store.messages(status="bogus")


async def test_outbox_rows_per_target_in_the_same_transaction(store):
    a = await store.save_message(msg(1))
    b = await store.save_message(msg(2, urgent=True))
    rows = await store.outbox_state()
    by_msg = {}
    for r in rows:
        by_msg.setdefault(r["message_id"], []).append((r["channel"], r["target"]))
    assert sorted(by_msg[a]) == [("email", MAIL.address), ("webhook", HOOK.address)]
    assert sorted(by_msg[b]) == [("email", MAIL.address), ("sms", ONCALL.address), ("webhook", HOOK.address)]  # urgent: also on call
    assert len({r["idem_key"] for r in rows}) == len(rows)


async def test_a_failed_save_leaves_neither_message_nor_outbox(store):
    # the outbox insert fails (its table is gone): the message must roll back too
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE outbox RENAME TO outbox_gone"))
    with pytest.raises(sa.exc.DBAPIError):
        await store.save_message(msg(1))
    assert await store.messages() == []


async def test_claims_lease_retry_and_deliver(store):
    await store.save_message(msg(1))
    first = await store.claim_due(lease_s=30)
    assert len(first) == 2 and all(i.attempts == 1 for i in first)
    assert await store.claim_due(lease_s=30) == []  # leased: nobody else takes them
    await store.failed(first[0].id, retry_in=0, error="webhook answered HTTP 503")
    await store.delivered(first[1].id)
    again = await store.claim_due(lease_s=30)
    assert [i.id for i in again] == [first[0].id] and again[0].attempts == 2
    await store.failed(again[0].id, retry_in=3600, error="x")
    assert await store.claim_due(lease_s=30) == []  # backing off


async def test_a_dead_claimers_rows_are_due_after_the_lease(store):
    await store.save_message(msg(1))
    assert len(await store.claim_due(lease_s=0.3)) == 2  # then "dies" without marking anything
    assert await store.claim_due(lease_s=30) == []
    await asyncio.sleep(0.5)
    assert len(await store.claim_due(lease_s=30)) == 2


async def test_concurrent_claimers_never_share_a_row(db_url, tmp_path):
    """Two stores (two instances) on one database claim at once: every row goes to one."""
    targets = tuple(Target("webhook", f"https://hooks.example/{i}") for i in range(5))
    a = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=NotifyConfig(targets))
    b = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=NotifyConfig(targets))
    try:
        for n in range(8):
            await a.save_message(msg(n))
        got: list[int] = []

        async def drain(st):
            while batch := await st.claim_due(lease_s=60, limit=3):
                got.extend(i.id for i in batch)

        await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
        assert sorted(got) == sorted(r["id"] for r in await a.outbox_state())
        assert len(got) == len(set(got)) == 40
    finally:
        await a.close()
        await b.close()


async def test_call_records_and_a_missed_call_notice(store):
    t0 = time.time()
    await store.call_started(call_sid="CA1", stream_sid="MZ1", caller="+15557654321", started_at=t0)
    live = await store.call("CA1")
    assert live.ended_at is None and live.outcome is None
    turns = [TurnRecord(n=1, started_at=t0 + 1, latency_ms=612.5, outcome="ok"),
             TurnRecord(n=2, started_at=t0 + 5, latency_ms=None, outcome="llm:timeout", error_stage="llm", error_code="timeout")]
    await store.call_ended(call_sid="CA1", ended_at=t0 + 9, outcome="answered", ended_by="caller", turns=turns)
    rec = await store.call("CA1")
    assert rec.outcome == "answered" and rec.ended_by == "caller" and rec.turns == tuple(turns)
    assert await store.outbox_state() == []  # an answered call tells nobody

    await store.call_started(call_sid="CA2", stream_sid="MZ2", caller="+15550000002", started_at=t0 + 20)
    await store.call_ended(call_sid="CA2", ended_at=t0 + 25, outcome="abandoned", ended_by="caller", turns=[])
    rows = await store.outbox_state()
    assert {(r["channel"], r["call_sid"], r["message_id"]) for r in rows} == {("webhook", "CA2", None), ("email", "CA2", None)}
    assert [c.call_sid for c in await store.calls()] == ["CA2", "CA1"]
    with pytest.raises(KeyError):
        await store.call_ended(call_sid="CA-unknown", ended_at=t0, outcome="failed", ended_by="error", turns=[])


async def test_hundreds_of_calls_starting_and_ending_together_are_all_recorded_in_few_commits(store):
    """At 400 calls one connection per record timed out queueing for SQLite's writer;
    records waiting together now share a transaction, and a bad one fails alone."""
    commits = 0

    @sa.event.listens_for(store.engine.sync_engine, "commit")
    def _count(_conn) -> None:
        nonlocal commits
        commits += 1

    t0 = time.time()
    n = 300
    await asyncio.gather(*(store.call_started(call_sid=f"CA{i}", stream_sid=f"MZ{i}", caller="+15550000000", started_at=t0 + i)
                           for i in range(n)))
    ends = [store.call_ended(call_sid=f"CA{i}", ended_at=t0 + n + i, outcome="answered", ended_by="caller", turns=[])
            for i in range(n)]
    ends.append(store.call_ended(call_sid="CA-unknown", ended_at=t0, outcome="failed", ended_by="error", turns=[]))
    results = await asyncio.gather(*ends, return_exceptions=True)
    assert [type(r) for r in results if r is not None] == [KeyError]  # only the bad record failed
    calls = await store.calls(limit=n + 10)
    assert len(calls) == n and all(c.ended_at and c.outcome == "answered" for c in calls)
    assert commits < n / 2  # batched (the failed batch was retried one record at a time)


async def test_a_batch_whose_commit_fails_fails_every_waiting_record_and_the_next_batch_is_written(tmp_path):
    """SQLite itself refuses the COMMIT: a deferred foreign key (checked only at commit,
    after every savepoint was released) trips on one record of the batch. Every caller
    waiting on that batch gets the error, none of its records is kept, nothing hangs,
    and the connection goes back clean: the next batch is written."""
    store = await SqlStore.open(data_dir=tmp_path / "data")
    try:
        async with store.engine.begin() as conn:  # a tripwire that only COMMIT can see
            await conn.exec_driver_sql(
                "CREATE TABLE tripwire (ref TEXT REFERENCES calls(call_sid) DEFERRABLE INITIALLY DEFERRED)")
            await conn.exec_driver_sql(
                "CREATE TRIGGER trip AFTER INSERT ON calls WHEN NEW.call_sid = 'CA-trip' "
                "BEGIN INSERT INTO tripwire VALUES ('CA-nowhere'); END")
        t0 = time.time()
        sids = [f"CA{i}" for i in range(20)] + ["CA-trip"]
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(store.call_started(call_sid=sid, stream_sid="MZ" + sid, caller="+15550000000", started_at=t0) for sid in sids),
                return_exceptions=True)
        assert all(isinstance(r, sa.exc.IntegrityError) for r in results), results
        assert "FOREIGN KEY" in str(results[0])
        assert await store.calls() == []  # the whole batch was rolled back

        async with asyncio.timeout(30):  # the next batch: the same calls, without the tripwire
            await asyncio.gather(*(store.call_started(call_sid=sid, stream_sid="MZ" + sid, caller="+15550000000", started_at=t0)
                                   for sid in sids[:-1]))
            await store.call_ended(call_sid="CA0", ended_at=t0 + 5, outcome="answered", ended_by="caller", turns=[])
        assert {c.call_sid for c in await store.calls()} == set(sids[:-1])
        assert (await store.call("CA0")).outcome == "answered"
    finally:
        async with asyncio.timeout(30):
            await store.close()


async def test_migrations_are_versioned_and_idempotent(store, db_url, tmp_path):
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(schema.schema_version.c.version))).scalar() == schema.VERSION
    assert await schema.migrate(store.engine) == schema.VERSION  # nothing left to do
    async with store.engine.begin() as conn:
        await conn.execute(schema.schema_version.update().values(version=schema.VERSION + 1))
    with pytest.raises(RuntimeError, match="newer than this code"):
        await schema.migrate(store.engine)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_files_are_private(store, tmp_path):
    await store.save_message(msg(1))
    data = tmp_path / "data"
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    for f in data.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f.name
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"


def test_targets_parse_with_clear_errors():
    assert parse_targets("https://h.example/a, mailto:o@example.com, x@example.org, sms:+1 555 000 1111") == (
        Target("webhook", "https://h.example/a"), Target("email", "o@example.com"), Target("email", "x@example.org"),
        Target("sms", "+15550001111"),
    )
    for bad in ("ftp://x", "sms:5551234", "mailto:nobody"):
        with pytest.raises(TargetError):
            parse_targets(bad)
