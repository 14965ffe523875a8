"""Issue 20 in whole simulated calls: a save under a locked SQLite file, who ended the
call (one answer for log, metrics and record), the console while a call is live, and
delivery that keeps failing showing in /healthz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.providers.receptionist import Receptionist
from bot.store.sql import SQLITE_NAME
from handlers.state import CALLS, METRICS
from handlers.storage import STORE
from tests.conftest import eventually
from tests.fakes.notify_receivers import Inbox, webhook_app
from tests.fakes.scripted import ScriptedTTS
from tests.test_calls import OPEN, TOKEN, phone_settings, serve, url
from tests.test_dialogue_calls import UTTERANCE, LengthSTT
from tests.test_outbox import ROOT, SECRET, start_http, wait_for

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

FORM = ["I'd like to leave a message about my parking permit",
        "My name is Ann Lee and my number is five five five, one two three, four five six seven",
        "yes that's right"]


async def test_a_locked_sqlite_file_during_the_save_is_not_a_misheard_turn(aiohttp_server, settings):
    """Another process takes SQLite's write lock once the caller has given a number, and
    holds it 8 s, across the confirmation's save (the LLM budget is 0.5 s). The caller
    still hears the message was passed on, never the fallback; once the lock goes, the
    message is in the store once, with one notice per target."""
    s = phone_settings(settings, early_turn_ms=300, end_silence_ms=700, message_save_wait_s=1.5,  # 3x the LLM budget: off its clock
                       notify_to="https://hooks.example/x", notify_webhook_secret=SECRET)
    tts = ScriptedTTS(ms_per_char=3)
    server, p, app = await serve(aiohttp_server, s, stt=LengthSTT(long=list(FORM)), llm=Receptionist.from_settings(s), tts=tts)
    other = sqlite3.connect(s.data_dir / SQLITE_NAME, isolation_level=None, check_same_thread=False, timeout=10)
    locked = asyncio.Event()

    async def lock_before_the_confirmation() -> None:
        await eventually(lambda: any((c.conversation.pending_message() or {}).get("callback_number") for c in app[CALLS].values()), 30)
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")  # the write lock, as another process would hold it
        locked.set()
        await asyncio.sleep(8.0)  # past the confirmation's save: the caller's last words take about 3 s
        other.execute("COMMIT")

    locker = asyncio.create_task(lock_before_the_confirmation())
    try:
        report = await simulate_call(url(server), [UTTERANCE] * 3, auth_token=TOKEN, max_wait_s=12, quiet_s=0.5, gap_s=0.2)
    finally:
        await locker
        other.close()
    assert locked.is_set()
    assert len(report.turns) == 3 and not [m for m in report.marks_echoed if m.startswith("fallback")], report.marks_echoed
    assert any("passed your message on" in t for t in tts.texts), tts.texts
    store = app[STORE]

    async def kept():
        return [m for m in await store.messages() if m.status == "new"]

    await wait_for(kept, 20, "the message, once the lock is gone")
    (m,) = await store.messages()
    assert (m.name, m.callback_number, m.status, m.call_sid) == ("Ann Lee", "5551234567", "new", report.call_sid)
    rows = await store.outbox_state()  # one per target (NOTIFY_TO and the business file's)
    assert rows and {r["message_id"] for r in rows} == {m.id} and all(m.uid in r["idem_key"] for r in rows)
    assert len({(r["channel"], r["target"]) for r in rows}) == len(rows)


async def test_a_caller_hang_up_is_stored_logged_and_counted_as_the_caller(aiohttp_server, settings, caplog):
    caplog.set_level(logging.INFO)
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, max_wait_s=8)  # then the caller hangs up
    await eventually(lambda: not app[CALLS])
    rec = None
    for _ in range(100):
        rec = await app[STORE].call(report.call_sid)
        if rec is not None and rec.ended_at is not None:
            break
        await asyncio.sleep(0.05)
    assert rec is not None and rec.ended_by == "caller" and rec.outcome == "answered"
    (line,) = [r for r in caplog.records if r.getMessage() == "call ended"]
    assert line.fields["ended_by"] == "caller"
    text = app[METRICS].render().decode()
    assert 'phonebot_calls_ended_total{ended_by="caller",outcome="answered"} 1.0' in text


async def test_the_console_answers_while_a_call_is_live(aiohttp_server, aiohttp_client, settings):
    from aiohttp import ClientSession, CookieJar

    key = "console-key-0123456789abcdef"
    s = phone_settings(settings, api_key=key)
    server, p, app = await serve(aiohttp_server, s, tts=ScriptedTTS(ms_per_char=40))  # a long reply: the call stays live
    call = asyncio.create_task(simulate_call(url(server), [OPEN], auth_token=TOKEN, max_wait_s=6))
    try:
        await eventually(lambda: app[CALLS], 20)
        async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:  # unsafe: a cookie for 127.0.0.1
            r = await http.get(url(server) + f"/console?key={key}", allow_redirects=True)
            body = await r.text()
            assert r.status == 200, body[:300]
            (live,) = app[CALLS].snapshot()
            assert live.call_sid in body and 'id="live"' in body and live.state and live.seconds >= 0
    finally:
        await call


@pytest.mark.real_time  # the alert age is wall-clock time (store timestamps)
async def test_failing_delivery_shows_in_health_metrics_and_clears_when_delivered(aiohttp_client, settings, tmp_path):
    """A receiver refusing everything: after NOTIFY_ALERT_AFTER_S /healthz turns degraded
    and /metrics counts the failing notice and its age; once the receiver accepts, both
    say so."""
    from bot.providers.registry import Providers
    from bot.store import NewMessage
    from handlers.app import create_app
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT

    inbox = Inbox(secret=SECRET, hook_status=503)
    runner, port = await start_http(webhook_app(inbox))
    business = tmp_path / "biz.toml"  # the bundled profile's [notify] names an e-mail target: none here
    business.write_text((ROOT / "examples/business/property-office.toml").read_text()
                        .replace('email_to = ["office@maple-street.example"]', "email_to = []"))
    s = settings.with_(business_file=str(business), notify_to=f"http://127.0.0.1:{port}/hook", notify_webhook_secret=SECRET, notify_alert_after_s=1.0,
                       call_lease_s=1.5, notify_retry_base_s=0.1, notify_retry_cap_s=0.3)
    app = create_app(s, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)
    client = await aiohttp_client(app)
    try:
        await app[STORE].save_message(NewMessage(call_sid="CA1", caller="+15550001", name="Ann", callback_number="5550001", about="x"))

        async def health():
            return await (await client.get("/healthz")).json()

        for _ in range(100):
            h = await health()
            if any(p.startswith("notifications failing for") for p in h["problems"]):
                break
            await asyncio.sleep(0.1)
        assert any(p.startswith("notifications failing for") for p in h["problems"]), h
        assert h["delivery"]["failing"] == 1 and h["delivery"]["failing_for_s"] >= 1.0
        metrics = await (await client.get("/metrics")).text()
        assert 'phonebot_notifications{state="failing"} 1.0' in metrics
        age = float(metrics.split("\nphonebot_notification_oldest_undelivered_seconds ")[1].split()[0])
        assert age > 1.0
        inbox.hook_status = 200
        for _ in range(100):
            h = await health()
            if h["delivery"]["delivered"] == 1:
                break
            await asyncio.sleep(0.1)
        assert h["delivery"] == {**h["delivery"], "failing": 0, "pending": 0, "delivered": 1}
        assert not any(p.startswith("notifications failing") for p in h["problems"])
        assert 'phonebot_notifications{state="delivered"} 1.0' in await (await client.get("/metrics")).text()
    finally:
        await runner.cleanup()
