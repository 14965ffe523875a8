"""Issue 20 at the store: identities unique across databases, a save that outlives a
locked or slow database and a lost acknowledgement, drafts and call records left by a
dead process, and a hanging receiver beside working ones."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from bot.store import NewMessage, NotifyConfig, SqlStore, schema
from bot.store.deliver import Deliverer
from bot.store.leases import heartbeat, reap
from bot.store.notify import parse_targets
from bot.store.saver import MessageSaver
from tests.fakes.notify_receivers import Inbox, SmtpHandler, webhook_app
from tests.storage_rig import NO_PG, PG_URL, fresh_pg
from tests.test_outbox import SECRET, free_port, settings_for, start_http, wait_for


def msg(n: int, **kw) -> NewMessage:
    base = dict(call_sid=f"CA{n:032d}", caller=f"+1555000{n:04d}", name=f"Caller {n}", callback_number=f"555000{n:04d}", about=f"topic {n}")
    return NewMessage(**(base | kw))


async def deliver_all(stores: list[SqlStore], settings, inbox: Inbox, expect: int) -> None:
    tasks = [asyncio.create_task(Deliverer(st, settings, poll_s=0.1).run()) for st in stores]
    try:
        async def arrived():
            return len(inbox.hooks) >= expect

        await wait_for(arrived, 30, f"{expect} webhooks")
        await asyncio.sleep(0.3)  # a repeat would come now
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("second", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason=NO_PG))])
async def test_two_databases_sending_to_one_receiver_never_repeat_a_key(tmp_path, second):
    """Two SQLite instances (or SQLite, then a new PostgreSQL), each with its own row ids
    from 1, message after message and a missed call each, all to one receiver: every
    key is new, so a receiver that drops repeats drops nothing real."""
    inbox = Inbox(secret=SECRET)
    runner, port = await start_http(webhook_app(inbox))
    notify = NotifyConfig(parse_targets(f"http://127.0.0.1:{port}/hook"))
    first = await SqlStore.open(data_dir=tmp_path / "a", notify=notify)
    other = await SqlStore.open(database_url=await fresh_pg() if second == "postgresql" else "", data_dir=tmp_path / "b", notify=notify)
    try:
        ids = []
        for st in (first, other):
            ids += [await st.save_message(msg(n)) for n in range(1, 13)]
            await st.call_started(call_sid="CA" + uuid.uuid4().hex, stream_sid="MZ1", caller="+15550001", started_at=1.0)
        for st in (first, other):
            for sid in [c.call_sid for c in await st.calls()]:
                await st.call_ended(call_sid=sid, ended_at=2.0, outcome="abandoned", ended_by="caller", turns=[])
        assert ids[:12] == ids[12:]  # row ids do repeat across the databases
        await deliver_all([first, other], settings_for(tmp_path), inbox, 26)
    finally:
        await first.close()
        await other.close()
        await runner.cleanup()
    keys = [h["key"] for h in inbox.hooks]
    assert len(keys) == 26 and len(set(keys)) == 26, sorted(keys)
    uids = {h["body"]["message"]["uid"] for h in inbox.hooks if h["body"]["event"] == "message"}
    assert len(uids) == 24 and all(h["key"] == h["body"]["idempotency_key"] for h in inbox.hooks)


async def test_a_database_from_before_uids_is_migrated_and_its_new_keys_are_unique(db_url, tmp_path):
    """A database at the schema version before uids: the step adds the columns, gives every
    old message a uid, and a message saved afterwards gets a key no old one had."""
    notify = NotifyConfig(parse_targets("https://hooks.example/x"))
    st = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify)
    old = await st.save_message(msg(1))
    async with st.engine.begin() as conn:  # back to version 1: drop what the new step adds
        for index in ("ix_messages_uid", "ix_messages_call", "ix_calls_open", "ix_outbox_message", "ix_messages_draft"):
            await conn.execute(sa.text(f"DROP INDEX IF EXISTS {index}"))
        for table, cols in schema._UID_COLUMNS.items():
            for col in cols:
                await conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {col}"))
        await conn.execute(schema.schema_version.update().values(version=schema.STEPS.index(schema._step_message_uids)))
    await st.close()
    st = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify)
    try:
        (m,) = await st.messages()
        assert m.id == old and len(m.uid) == 36
        new = await st.save_message(msg(2))
        rows = await st.outbox_state()
        assert len({r["idem_key"] for r in rows}) == len(rows) == 2
        assert [m.status for m in await st.messages()] == ["new", "new"] and new != old
        assert await reap(st) == type(await reap(st))()  # old messages are not drafts: nothing to reap
    finally:
        await st.close()


class FlakyDb:
    """A real store behind a bad link: the first ``locked`` tries fail as a locked SQLite
    does, each try is ``delay`` s slow, and the first ``lost_acks`` commits land but their
    answer is lost (PostgreSQL committed, then the connection broke)."""

    def __init__(self, store: SqlStore, *, locked: int = 0, lost_acks: int = 0, delay: float = 0.0) -> None:
        self.store, self.locked, self.lost_acks, self.delay = store, locked, lost_acks, delay
        self.tries = 0

    async def save_message(self, m: NewMessage, *, final: bool = True) -> int:
        self.tries += 1
        await asyncio.sleep(self.delay)
        if self.locked:
            self.locked -= 1
            raise sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        mid = await self.store.save_message(m, final=final)
        if self.lost_acks:
            self.lost_acks -= 1
            raise ConnectionResetError("connection lost after COMMIT")
        return mid


async def test_retried_saves_and_lost_acknowledgements_keep_one_message_and_one_set_of_notices(db_url, tmp_path):
    notify = NotifyConfig(parse_targets("https://hooks.example/x, mailto:o@example.com"))
    st = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify)
    try:
        db = FlakyDb(st, locked=2, lost_acks=2, delay=0.05)
        saver = MessageSaver(db, retry_base_s=0.01, retry_cap_s=0.05)
        uid = str(uuid.uuid4())
        saver.save(msg(1, complete=False, uid=uid), final=False)  # drafts as the form grows
        saver.save(msg(1, complete=False, uid=uid, name=""), final=False)
        done = saver.save(msg(1, uid=uid), final=True)  # confirmed
        late = saver.save(msg(1, complete=False, uid=uid), final=True)  # a hang-up after it: never incomplete again
        mid = await asyncio.wait_for(done, 10)
        assert await asyncio.wait_for(late, 10) == mid
        # a cancellation that lands after the commit: the call keeps its pending form and hands it over again
        again = await MessageSaver(st).save(msg(1, complete=False, uid=uid), final=True)
        assert again == mid and db.tries >= 5 and saver.retries >= 4
        (m,) = await st.messages()
        assert (m.id, m.uid, m.status, m.name) == (mid, uid, "new", "Caller 1")
        rows = await st.outbox_state()
        assert sorted(r["channel"] for r in rows) == ["email", "webhook"] and {r["message_id"] for r in rows} == {mid}
    finally:
        await st.close()


async def test_a_permanent_failure_is_reported_not_retried(tmp_path):
    st = await SqlStore.open(data_dir=tmp_path)
    try:
        async def full(m, *, final=True):
            raise sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

        st.save_message = full  # type: ignore[method-assign]
        saver = MessageSaver(st)
        with pytest.raises(sa.exc.OperationalError):
            await asyncio.wait_for(saver.save(msg(1, uid=str(uuid.uuid4())), final=True), 5)
        assert saver.retries == 0 and saver.pending == 0
    finally:
        await st.close()


async def test_a_dead_process_leaves_nothing_open_and_each_caller_is_told_once(db_url, tmp_path):
    """Process A (two live calls: one with a draft, one with nothing yet) stops without a
    word; two instances reap at once: the records close as lost, the draft is notified
    as an incomplete message, the other caller as a lost call, each exactly once. A live
    process's calls and drafts, heartbeat renewing them, are left alone."""
    notify = NotifyConfig(parse_targets("https://hooks.example/x"))
    dead = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify, lease_s=1.5)
    live = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify, lease_s=1.5)
    peer = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=notify, lease_s=1.5)

    async def beating() -> None:  # the live process renews as its upkeep does (every lease/3), however slow the machine
        while True:
            await heartbeat(live)
            await asyncio.sleep(0.5)

    beat = asyncio.create_task(beating())
    try:
        for st, n in ((dead, 1), (dead, 2), (live, 3)):
            await st.call_started(call_sid=f"CA{n:032d}", stream_sid=f"MZ{n}", caller=f"+1555000{n:04d}", started_at=1.0)
        await dead.save_message(msg(1, complete=False, uid=str(uuid.uuid4()), callback_number=""), final=False)
        await live.save_message(msg(3, complete=False, uid=str(uuid.uuid4())), final=False)
        assert await reap(peer) == type(await reap(peer))()  # leases still good
        await asyncio.sleep(1.6)
        got = await asyncio.gather(reap(peer), reap(live))
        assert sum(r.calls for r in got) == 2 and sum(r.drafts for r in got) == 1
        assert await reap(peer) == type(got[0])()
        calls = {c.call_sid[-1]: c for c in await peer.calls()}
        assert (calls["1"].outcome, calls["1"].ended_by, calls["2"].outcome) == ("lost", "lost", "lost")
        assert calls["3"].ended_at is None
        msgs = {m.call_sid[-1]: m for m in await peer.messages()}
        assert msgs["1"].status == "incomplete" and msgs["3"].status == "incomplete"
        rows = await peer.outbox_state()
        assert sorted((r["call_sid"][-1], r["message_id"] is not None) for r in rows) == [("1", True), ("2", False)]
        # the live call ends normally: its draft becomes the final incomplete message, told once
        await live.save_message(msg(3, complete=False, uid=msgs["3"].uid), final=True)
        await live.call_ended(call_sid=f"CA{3:032d}", ended_at=2.0, outcome="answered", ended_by="caller", turns=[])
        assert len(await peer.outbox_state()) == 3
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        for st in (dead, live, peer):
            await st.close()


async def test_a_hanging_receiver_does_not_hold_up_the_others(tmp_path):
    """Two webhooks and e-mail; one webhook reads each request and never answers. Every
    message reaches the working webhook and the mailbox while the hanging one still holds
    its first requests, including messages saved after the hang began."""
    hang, ok = Inbox(secret=SECRET, hold=asyncio.Event()), Inbox(secret=SECRET)
    (r1, p1), (r2, p2) = await start_http(webhook_app(hang)), await start_http(webhook_app(ok))
    smtp_port = free_port()
    smtp = Controller(SmtpHandler(ok), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    targets = f"http://127.0.0.1:{p1}/hook, http://127.0.0.1:{p2}/hook, mailto:o@example.com"
    st = await SqlStore.open(data_dir=tmp_path, notify=NotifyConfig(parse_targets(targets)))
    s = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none", smtp_from="bot@example.com",
                     notify_lease_s=120.0, notify_send_timeout_s=60.0)
    task = asyncio.create_task(Deliverer(st, s, poll_s=0.1).run())
    try:
        for n in range(1, 13):
            await st.save_message(msg(n))

        async def first_held():
            return hang.held >= 1

        await wait_for(first_held, 60, "the hanging receiver to hold a request")
        for n in range(13, 16):
            await st.save_message(msg(n))

        async def all_others():
            return len(ok.hooks) == 15 and len(ok.mails) == 15

        await wait_for(all_others, 60, "the working webhook and e-mail")
        assert hang.hooks == [] and 1 <= hang.held <= Deliverer.PER_TARGET  # still hanging, holding only its own sends
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hang.hold.set()
        smtp.stop()
        await st.close()
        await r1.cleanup()
        await r2.cleanup()


async def test_time_off_the_clock_does_not_count_against_the_streams_bound():
    """A source that waits 0.3 s on a side effect inside a stream bounded at 0.1 s between
    items: off the clock it is not a stall (nested bounds too); on it, it is."""
    from contextlib import aclosing

    from bot.stall import Stall, off_the_clock

    async def source(off: bool):
        yield "first"
        if off:
            with off_the_clock():
                await asyncio.sleep(0.3)
        else:
            await asyncio.sleep(0.3)
        yield "after the save"

    async def read(off: bool) -> list[str]:
        loop = asyncio.get_running_loop()
        outer = Stall(loop.time() + 0.1, 0.1)
        inner = Stall(loop.time() + 0.1, 0.1)
        async with aclosing(outer.over(inner.over(source(off)))) as items:
            return [x async for x in items]

    assert await read(True) == ["first", "after the save"]
    with pytest.raises(TimeoutError):
        await read(False)


async def test_a_query_cancelled_twice_leaves_no_close_that_waits_forever(tmp_path):
    """A query cancelled, then cancelled again while SQLAlchemy closes the invalidated
    connection (a shutdown does this): aiosqlite stopped the connection's thread twice,
    and the graceful close waited for ever on the second stop, hanging the loop's
    tear-down (CI: 300 s). Every close must finish; the store must still work."""
    import time

    store = await SqlStore.open(data_dir=tmp_path)
    closes: list[asyncio.Task] = []  # held here: a pending task nobody holds is only "destroyed"
    try:
        for i in range(240):
            t = asyncio.create_task(store.claim_due(lease_s=5) if i % 2 else store.messages())
            for _ in range(i % 9):
                await asyncio.sleep(0)
            t.cancel()
            for _ in range((i // 9) % 5):
                await asyncio.sleep(0)
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
            closes += [c for c in asyncio.all_tasks() if "_terminate_graceful_close" in c.get_coro().__qualname__ and c not in closes]
        await asyncio.to_thread(time.sleep, 0.5)  # real time for the connections' threads
        assert closes, "no connection was closed while cancelled: the case is not exercised"
        assert [c for c in closes if not c.done()] == []
        assert await store.messages() == []
    finally:
        for c in closes:
            c.cancel()
        await store.close()
