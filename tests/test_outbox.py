"""The outbox and the deliverer: the owner is told exactly once per message per target,
across a SIGKILL and a restart, by webhook (signed), e-mail (real SMTP) and SMS (Twilio's
Messages API through the twilio SDK, against the wire fake)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from bot.settings import Settings
from bot.store import NewMessage, NotifyConfig, SqlStore
from bot.store.deliver import Deliverer, backoff
from bot.store.notify import parse_targets
from tests.fakes.notify_receivers import Inbox, SmtpHandler, twilio_sms_app, webhook_app

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_http(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def wait_for(pred, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = await pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


def msg(n: int, **kw) -> NewMessage:
    return NewMessage(call_sid=f"CA{n:032d}", caller=f"+1555000000{n}", name=f"Caller {n}", callback_number=f"555000000{n}", about=f"topic {n}", **kw)


async def test_killed_deliverer_restarts_and_each_message_arrives_once(db_url, tmp_path):
    """Receivers down, three messages taken, the deliverer SIGKILLed and restarted, the
    receivers come up: each message reaches the webhook once and the mailbox once."""
    hook_port, smtp_port = free_port(), free_port()
    targets = f"http://127.0.0.1:{hook_port}/hook, mailto:owner@example.com"
    store = await SqlStore.open(database_url=db_url, data_dir=tmp_path, notify=NotifyConfig(parse_targets(targets)))
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
    env.update({
        "DATA_DIR": str(tmp_path), "TWILIO_VALIDATE": "false", "DATABASE_URL": db_url, "NOTIFY_TO": targets,
        "NOTIFY_WEBHOOK_SECRET": SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "SMTP_TLS": "none",
        "SMTP_FROM": "bot@example.com", "NOTIFY_RETRY_BASE_S": "0.2", "NOTIFY_RETRY_CAP_S": "1", "NOTIFY_LEASE_S": "6",
    })
    log = open(tmp_path / "deliver.log", "ab")

    async def start():
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "deliver", cwd=ROOT, env=env, stdout=log, stderr=log)

    inbox = Inbox(secret=SECRET)
    smtp = Controller(SmtpHandler(inbox), hostname="127.0.0.1", port=smtp_port)
    runner = None
    proc = await start()
    try:
        ids = [await store.save_message(msg(n)) for n in (1, 2, 3)]

        async def all_tried():
            rows = await store.outbox_state()
            return len(rows) == 6 and all(r["attempts"] >= 2 and r["last_error"] for r in rows)

        await wait_for(all_tried, 90, "every notification to fail at least twice against the dead receivers")
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        proc = await start()
        runner, _ = await start_http(webhook_app(inbox), hook_port)
        smtp.start()

        async def all_delivered():
            rows = await store.outbox_state()
            return all(r["delivered_at"] for r in rows) and rows

        rows = await wait_for(all_delivered, 90, "every notification to be delivered")
        await asyncio.sleep(1.5)  # a duplicate would arrive within the retry cap
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        if runner is not None:
            await runner.cleanup()
        smtp.stop()
        await store.close()
    assert all(r["attempts"] >= 3 for r in rows)  # failed before the kill, sent after it
    assert sorted(h["body"]["message"]["id"] for h in inbox.hooks) == sorted(ids)  # once each
    assert all(h["signed"] for h in inbox.hooks)
    assert all(h["key"] == h["body"]["idempotency_key"] for h in inbox.hooks)
    assert len({h["key"] for h in inbox.hooks}) == 3
    assert sorted(m["subject"] for m in inbox.mails) == ["Message from Caller 1", "Message from Caller 2", "Message from Caller 3"]
    assert len({m["message_id"] for m in inbox.mails}) == 3 and all(m["to"] == ["owner@example.com"] for m in inbox.mails)
    assert "call you back" not in inbox.mails[0]["text"] and "5550000001" in "".join(m["text"] for m in inbox.mails)


def settings_for(tmp_path, **kw) -> Settings:
    base = dict(data_dir=tmp_path, twilio_validate=False, notify_webhook_secret=SECRET, notify_retry_base_s=0.1,
                notify_retry_cap_s=0.4, notify_lease_s=6.0)
    return Settings(**(base | kw))


async def run_deliverer(store, settings, until, timeout=30, poll_s=0.1):
    d = Deliverer(store, settings, poll_s=poll_s)
    task = asyncio.create_task(d.run())
    try:
        await wait_for(until, timeout, "the deliverer")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return d


async def test_sms_through_the_twilio_sdk_urgent_goes_to_on_call_too(tmp_path):
    inbox = Inbox(secret=SECRET)
    runner, port = await start_http(twilio_sms_app(inbox))
    settings = settings_for(tmp_path, twilio_account_sid="AC" + "1" * 32, twilio_auth_token="tok", twilio_base_url=f"http://127.0.0.1:{port}",
                            twilio_sms_from="+15550009999")
    notify = NotifyConfig(parse_targets("sms:+15550001111"), parse_targets("sms:+15550002222"))
    store = await SqlStore.open(data_dir=tmp_path, notify=notify)
    try:
        await store.save_message(msg(1))
        await store.save_message(msg(2, urgent=True))

        async def three():
            return len(inbox.sms) >= 3 and all(r["delivered_at"] for r in await store.outbox_state())

        await run_deliverer(store, settings, three)
    finally:
        await store.close()
        await runner.cleanup()
    got = sorted((s["form"]["To"], s["form"]["Body"].split(" asked")[0]) for s in inbox.sms)
    assert got == [("+15550001111", "Caller 1"), ("+15550001111", "URGENT: Caller 2"), ("+15550002222", "URGENT: Caller 2")]
    assert all(s["form"]["From"] == "+15550009999" and s["auth"] == "AC" + "1" * 32 + ":tok" and s["account"] == "AC" + "1" * 32 for s in inbox.sms)


async def test_a_refusing_webhook_is_retried_with_backoff_until_accepted(tmp_path):
    inbox = Inbox(secret=SECRET, hook_status=503)
    runner, port = await start_http(webhook_app(inbox))
    store = await SqlStore.open(data_dir=tmp_path, notify=NotifyConfig(parse_targets(f"http://127.0.0.1:{port}/hook")))
    try:
        await store.save_message(msg(1))

        async def three_refusals():
            if len(inbox.hooks) >= 3:
                inbox.hook_status = 200
            return any(r["delivered_at"] for r in await store.outbox_state())

        await run_deliverer(store, settings_for(tmp_path), three_refusals)
        (row,) = await store.outbox_state()
    finally:
        await store.close()
        await runner.cleanup()
    assert row["attempts"] == len(inbox.hooks) >= 4
    assert len({h["key"] for h in inbox.hooks}) == 1  # every retry carries the same key
    assert all(h["signed"] for h in inbox.hooks)


async def test_retries_wake_the_deliverer_when_due_and_an_idle_one_does_not_poll(tmp_path):
    """The poll is an hour here: what this process saves wakes the deliverer at once, and
    each retry it schedules wakes it when due (two rows, refused three times in all), so
    both arrive long before any poll; with nothing left, it asks the database no more."""
    inbox = Inbox(secret=SECRET, hook_status=503)
    runner, port = await start_http(webhook_app(inbox))
    store = await SqlStore.open(data_dir=tmp_path, notify=NotifyConfig(parse_targets(f"http://127.0.0.1:{port}/hook")))
    claims = 0
    claim_due = store.claim_due

    async def counted(**kw):
        nonlocal claims
        claims += 1
        return await claim_due(**kw)

    store.claim_due = counted  # type: ignore[method-assign]
    d = Deliverer(store, settings_for(tmp_path), poll_s=3600)
    task = asyncio.create_task(d.run())
    try:
        await store.save_message(msg(1))
        await store.save_message(msg(2))

        async def both():
            if len(inbox.hooks) >= 3:
                inbox.hook_status = 200
            rows = await store.outbox_state()
            return len(rows) == 2 and all(r["delivered_at"] for r in rows)

        await wait_for(both, 30, "both rows delivered on their retries")
        settled = claims
        await asyncio.sleep(0.5)  # idle: nothing saved, no retry pending
        assert claims <= settled + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        await runner.cleanup()
    assert len(inbox.hooks) >= 4 and d.sent == 2


async def test_a_lone_row_refused_while_the_deliverer_idles_is_retried_when_due(tmp_path):
    """One row, refused once: its delivery fails while the deliverer already waits (the poll is
    an hour), and the retry it schedules must wake it when due, not at the next poll."""
    inbox = Inbox(secret=SECRET, hook_status=503)
    runner, port = await start_http(webhook_app(inbox))
    store = await SqlStore.open(data_dir=tmp_path, notify=NotifyConfig(parse_targets(f"http://127.0.0.1:{port}/hook")))
    d = Deliverer(store, settings_for(tmp_path), poll_s=3600)
    task = asyncio.create_task(d.run())
    try:
        await store.save_message(msg(1))

        async def delivered():
            if inbox.hooks:
                inbox.hook_status = 200
            rows = await store.outbox_state()
            return len(rows) == 1 and rows[0]["delivered_at"]

        await wait_for(delivered, 10, "the row delivered on its retry")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        await runner.cleanup()
    assert d.sent == 1 and len(inbox.hooks) >= 2


def test_backoff_doubles_to_the_cap_with_jitter():
    for attempts, nominal in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (30, 60.0)):
        got = backoff(attempts, 2.0, 60.0)
        assert nominal * 0.8 <= got <= nominal * 1.2


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_server_records_calls_and_tells_the_owner_of_a_missed_call(aiohttp_server, tmp_path, backend):
    from bot.carriers.twilio.simulator import simulate_call
    from bot.providers.registry import Providers
    from handlers.app import create_app
    from handlers.storage import STORE
    from tests.conftest import caller_path
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    inbox = Inbox(secret=SECRET)
    runner, port = await start_http(webhook_app(inbox))
    settings = settings_for(tmp_path, notify_to=f"http://127.0.0.1:{port}/hook", end_silence_ms=500, stt_timeout=0.5,
                            llm_timeout=0.5, tts_timeout=0.5)
    app = create_app(settings, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    try:
        spoke = await simulate_call(base, [caller_path("open_tomorrow_joe.wav")], from_number="+15551230001")
        silent = await simulate_call(base, [], from_number="+15551230002", max_wait_s=5.0)
        store = app[STORE]

        async def both_ended():
            calls = await store.calls()
            return len(calls) == 2 and all(c.ended_at for c in calls) and calls

        try:
            calls = {c.call_sid: c for c in await wait_for(both_ended, 20, "both call records")}
        except AssertionError as exc:
            raise AssertionError(await store.calls()) from exc
        await wait_for(lambda: _true(len(inbox.hooks) >= 1), 20, "the missed-call webhook")
    finally:
        await runner.cleanup()
    answered, missed = calls[spoke.call_sid], calls[silent.call_sid]
    assert answered.outcome == "answered" and answered.caller == "+15551230001" and len(answered.turns) == 1
    assert answered.turns[0].outcome == "ok" and answered.turns[0].latency_ms is not None and answered.turns[0].latency_ms > 0
    assert missed.outcome == "abandoned" and missed.caller == "+15551230002" and missed.turns == ()
    assert missed.ended_by in ("caller", "bot")  # the caller gave up, or (on a slow machine) the silence timer hung up first
    assert [h["body"]["event"] for h in inbox.hooks] == ["missed_call"]
    assert inbox.hooks[0]["body"]["call"]["caller"] == "+15551230002"


async def _true(v):
    return v


async def test_a_slow_store_never_delays_the_greeting_and_the_record_still_completes(aiohttp_server, tmp_path):
    """The call record's start is written in its own task: while the database is stuck,
    the caller hears the greeting and the turn; the record's end waits for its start,
    and both are written once the database answers."""
    import asyncio

    from bot.carriers.twilio.simulator import simulate_call
    from bot.providers.registry import Providers
    from handlers.app import create_app
    from handlers.storage import STORE
    from tests.conftest import caller_path
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    settings = settings_for(tmp_path, end_silence_ms=500, stt_timeout=2, llm_timeout=2, tts_timeout=2)
    app = create_app(settings, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    store = app[STORE]
    unstuck, entered = asyncio.Event(), asyncio.Event()
    real_started = store.call_started

    async def stuck_started(**kw):
        entered.set()
        await unstuck.wait()
        await real_started(**kw)

    store.call_started = stuck_started
    report = await simulate_call(str(server.make_url("")).rstrip("/"), [caller_path("open_tomorrow_joe.wav")])
    assert entered.is_set() and not unstuck.is_set()
    assert report.greeting_ms is not None and len(report.turns) == 1 and report.turns[0].first_audio_ms is not None
    assert await store.calls() == []  # nothing written yet: the start is still stuck
    unstuck.set()

    async def ended():
        calls = await store.calls()
        return len(calls) == 1 and calls[0].ended_at and calls

    (call,) = await wait_for(ended, 20, "the call record")
    assert call.call_sid == report.call_sid and call.outcome == "answered" and len(call.turns) == 1
