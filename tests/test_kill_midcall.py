"""kill -9 of the server at every step of leaving a message, then a restart.

Six callers on one real server process (tests/fakes/message_server.py: the whole app,
scripted STT by utterance length, the receptionist): one said nothing yet; one gave the
topic; one the topic and name; one the number too; one confirmed while the owner's
webhook refused (its notice failing, retried); one confirmed while the webhook held the
request (delivery in flight). All are still on the line when the process is killed
(SIGKILL). The restarted server (CALL_LEASE_S short) finds the leases run out: each
caller's message exists exactly once (complete or incomplete), every call record is
closed (``lost``), and the owner hears of each caller exactly once (deduped by key, as
a receiver must: a request in flight at the kill is retried with the same key).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import numpy as np

from bot.carriers.twilio.simulator import simulate_call
from bot.store import SqlStore
from media import wav
from tests.conftest import trimmed_speech
from tests.fakes.notify_receivers import Inbox, webhook_app
from tests.test_outbox import ROOT, SECRET, free_port, start_http, wait_for

TOKEN = "kill-test-token"
UNIT_S = 0.7


def step_audio(k: int) -> bytes:
    """About ``k`` units of speech between short silences: the k-th step's utterance."""
    speech = np.frombuffer(trimmed_speech("open_tomorrow_joe.wav"), dtype="<i2")
    while len(speech) < k * UNIT_S * 8000:
        speech = np.concatenate([speech, speech])
    silence = np.zeros(8 * 300, dtype="<i2")
    return wav.write_pcm16(np.concatenate([silence, speech[: int(k * UNIT_S * 8000)], silence]).astype("<i2").tobytes(), 8000)


def server_env(tmp_path, hook: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
    env.update({
        "DATA_DIR": str(tmp_path), "TWILIO_AUTH_TOKEN": TOKEN, "NOTIFY_TO": hook, "NOTIFY_WEBHOOK_SECRET": SECRET,
        "BUSINESS_FILE": str(tmp_path / "biz.toml"), "STEP_UNIT_S": str(UNIT_S), "STEP_OFFSET_S": os.environ.get("STEP_OFFSET_S", "0.45"),
        "CALL_LEASE_S": "2", "NOTIFY_RETRY_BASE_S": "0.2", "NOTIFY_RETRY_CAP_S": "0.5", "NOTIFY_LEASE_S": "4",
        "NOTIFY_SEND_TIMEOUT_S": "1.5", "END_SILENCE_MS": "500", "EARLY_TURN_MS": "0", "REPROMPT_AFTER_S": "60",
        "MEDIA_TIMEOUT_S": "60", "MESSAGE_SAVE_WAIT_S": "1", "LOG_LEVEL": "INFO",
    })
    return env


async def start_server(env: dict, port: int, log) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.fakes.message_server", str(port), cwd=ROOT, env=env,
                                                stdout=log, stderr=log)
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the server did not become ready")


async def test_kill_at_every_step_of_a_message_then_restart(tmp_path, db_url):
    (tmp_path / "biz.toml").write_text((ROOT / "examples/business/property-office.toml").read_text()
                                       .replace('email_to = ["office@maple-street.example"]', "email_to = []")
                                       .replace('urgent_sms_to = ["+15550100199"]', "urgent_sms_to = []"))
    inbox = Inbox(secret=SECRET, hook_status=503)
    runner, hook_port = await start_http(webhook_app(inbox))
    port = free_port()
    env = server_env(tmp_path, f"http://127.0.0.1:{hook_port}/hook") | {"DATABASE_URL": db_url}
    log = open(tmp_path / "server.log", "ab")
    proc = await start_server(env, port, log)
    base = f"http://127.0.0.1:{port}"
    store = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    calls: dict[str, asyncio.Task] = {}

    hold_on = wav.write_pcm16(bytes(2 * 8000 * 100), 8000)  # then 100 s of silence: still on the line

    def call(name: str, steps: int) -> None:
        calls[name] = asyncio.create_task(simulate_call(
            base, [*(step_audio(k) for k in range(1, steps + 1)), hold_on], auth_token=TOKEN, from_number=f"+1555010{len(calls):04d}",
            max_wait_s=20, quiet_s=0.4, gap_s=0.3,
        ))

    async def by_caller() -> dict[str, list]:
        got: dict[str, list] = {}
        for m in await store.messages():
            got.setdefault(m.caller, []).append(m)
        return got

    try:
        call("silent", 0)
        call("topic", 1)
        call("name", 2)
        call("number", 3)
        call("refused", 4)

        async def steps_kept():
            got = {c: ms[0] for c, ms in (await by_caller()).items()}
            return ("+15550100001" in got and got.get("+15550100002") and got["+15550100002"].name == "Ann Lee"
                    and got.get("+15550100003") and got["+15550100003"].callback_number == "5551234567"
                    and got.get("+15550100004") and got["+15550100004"].status == "new"
                    and any(r["attempts"] >= 1 and r["last_error"] for r in await store.outbox_state()))

        await wait_for(steps_kept, 90, "drafts at each step, and the first confirmed message failing delivery")
        inbox.hook_status, inbox.hold = 200, asyncio.Event()
        call("in_flight", 4)

        async def held():
            return inbox.held >= 1 and any(m.status == "new" for m in (await by_caller()).get("+15550100005", []))

        await wait_for(held, 60, "the last confirmed message's delivery in flight")
        assert all(not t.done() for t in calls.values()), "every caller is still on the line"
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        inbox.hold.set()  # the receiver answers what it held: nobody is there to hear it
        await asyncio.gather(*calls.values(), return_exceptions=True)
        before = {c: [(m.status, m.name, m.callback_number) for m in ms] for c, ms in (await by_caller()).items()}
        assert not [r for r in await store.calls() if r.ended_at], "the killed process closed nothing"

        proc = await start_server(env, port, log)

        async def settled():
            recs = await store.calls()
            rows = await store.outbox_state()
            return len(recs) == 6 and all(r.ended_at for r in recs) and len(rows) == 6 and all(r["delivered_at"] for r in rows)

        await wait_for(settled, 60, "every record closed and every notice delivered after the restart")
        await asyncio.sleep(1.0)  # a duplicate would come now
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        for t in calls.values():
            t.cancel()
        await asyncio.gather(*calls.values(), return_exceptions=True)
        await store.close()
        await runner.cleanup()
    got: dict[str, list] = {}
    st = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    try:
        for m in await st.messages():
            got.setdefault(m.caller, []).append(m)
        recs = {r.caller: r for r in await st.calls()}
    finally:
        await st.close()
    # each caller's message exactly once, as far as the caller got
    assert "+15550100000" not in got
    assert [(m.status, m.about != "", m.name, m.callback_number) for m in got["+15550100001"]] == [("incomplete", True, "", "")]
    assert [(m.status, m.name, m.callback_number) for m in got["+15550100002"]] == [("incomplete", "Ann Lee", "")]
    assert [(m.status, m.name, m.callback_number) for m in got["+15550100003"]] == [("incomplete", "Ann Lee", "5551234567")]
    for c in ("+15550100004", "+15550100005"):
        assert [(m.status, m.name, m.callback_number) for m in got[c]] == [("new", "Ann Lee", "5551234567")], (c, before)
    # every record closed: the process that had them is gone
    assert len(recs) == 6 and all((r.outcome, r.ended_by) == ("lost", "lost") for r in recs.values()), recs
    # the owner: one notice per caller (the silent one's as a lost call), each key answered once
    answered = [h for h in inbox.hooks if h.get("answered", True)]
    keys = [h["key"] for h in answered]
    assert len(set(keys)) == 6, keys
    events = sorted((h["body"]["event"], (h["body"].get("message") or h["body"].get("call"))["caller"]) for h in answered)
    assert sorted(set(events)) == sorted([("lost_call", "+15550100000")] + [("message", f"+1555010000{i}") for i in range(1, 6)])
