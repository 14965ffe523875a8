"""python -m bot messages: --json, --since, the timezone, "no messages", terminal-safe output."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from bot.shell.cli_messages import main, parse_since, safe
from bot.store import NewMessage, SqlStore, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Out:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(monkeypatch, capsys):
    """``main`` in this process (a subprocess per call is slow on a busy machine; one
    test below runs the real ``python -m bot messages``)."""

    def go(data_dir, *args, **env):
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("TIMEZONE", raising=False)
        for k, v in {"DATA_DIR": str(data_dir), "TWILIO_VALIDATE": "false", **env}.items():
            monkeypatch.setenv(k, v)
        code = main(list(args))
        got = capsys.readouterr()
        return Out(code, got.out, got.err)

    return go


def seed(data_dir, *msgs, age_s=None):
    async def go():
        st = await SqlStore.open(data_dir=data_dir)
        ids = [await st.save_message(m) for m in msgs]
        if age_s is not None:  # the first one was taken age_s ago
            async with st.engine.begin() as conn:
                await conn.execute(schema.messages.update().where(schema.messages.c.id == ids[0]).values(created_at=time.time() - age_s))
        await st.close()
        return ids

    return asyncio.run(go())


def test_the_real_command_with_no_store_says_where_it_looked_and_creates_none(tmp_path):
    env = {**os.environ, "DATA_DIR": "relative/d", "TWILIO_VALIDATE": "false"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "bot", "messages"], cwd=tmp_path, env={**env, "PYTHONPATH": ROOT},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert f"no message store at SQLite {tmp_path / 'relative' / 'd' / 'phonebot.sqlite3'}" in out.stderr  # absolute
    assert not (tmp_path / "relative").exists()


def test_no_store_is_an_error_an_empty_one_is_not(tmp_path, run):
    out = run(tmp_path / "d")
    assert out.returncode == 1 and out.stdout == "" and "no message store at SQLite" in out.stderr
    assert not (tmp_path / "d" / "phonebot.sqlite3").exists()
    seed(tmp_path / "d")  # a store with no messages in it
    out = run(tmp_path / "d")
    assert out.returncode == 0 and out.stdout.strip() == "no messages"
    assert f"messages from SQLite {tmp_path / 'd' / 'phonebot.sqlite3'}" in out.stderr
    out = run(tmp_path / "d", "--json")
    assert out.returncode == 0 and out.stdout == "" and "no messages" in out.stderr


def test_times_default_to_the_business_files_zone(tmp_path, run):
    seed(tmp_path, NewMessage(call_sid="CA9", caller="+15550000009", name="Cy", callback_number="5550000009", about="gate"))
    out = run(tmp_path, "--json")  # no TIMEZONE: the bundled business file's America/New_York
    assert json.loads(out.stdout.splitlines()[0])["created_at"][-6:] in ("-05:00", "-04:00")
    biz = tmp_path / "biz.toml"
    biz.write_text(open(os.path.join(ROOT, "examples/business/dental-practice.toml")).read())
    out = run(tmp_path, "--json", BUSINESS_FILE=str(biz))
    assert json.loads(out.stdout.splitlines()[0])["created_at"][-6:] in ("+00:00", "+01:00")  # Europe/London


def test_json_since_and_timezone(tmp_path, run):
    old, new = seed(
        tmp_path,
        NewMessage(call_sid="CA1", caller="+15550000001", name="Ann", callback_number="5550000001", about="old"),
        NewMessage(call_sid="CA2", caller="+15550000002", name="Bo", callback_number="5550000002", about="boiler", urgent=True, complete=False),
        age_s=3 * 3600,
    )

    out = run(tmp_path, "--json", "--tz", "America/New_York")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == [new, old]
    assert rows[0] == {**rows[0], "status": "incomplete", "name": "Bo", "callback_number": "5550000002", "about": "boiler",
                       "urgent": True, "caller": "+15550000002", "call_sid": "CA2"}
    assert rows[0]["created_at"][-6:] in ("-05:00", "-04:00")  # New York, not UTC
    out = run(tmp_path, "--json", "--since", "2h")
    assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == [new]
    out = run(tmp_path, "--since", "yesterday-ish")
    assert out.returncode == 2 and "duration" in out.stderr
    out = run(tmp_path, "--json", "--since", "2000-01-01")
    assert len(out.stdout.splitlines()) == 2
    out = run(tmp_path, "--json", TIMEZONE="Asia/Tokyo")
    assert json.loads(out.stdout.splitlines()[0])["created_at"].endswith("+09:00")


def test_plain_listing_cannot_be_driven_by_a_caller(tmp_path, run):
    seed(tmp_path, NewMessage(call_sid="CA3", caller="+1555\x1b[2J", name="Eve\x1b[2J\x1b[H", callback_number="555",
                              about="hi\n#99  2026-01-01 00:00  [new]  Fake  callback 911\u202e"))
    out = run(tmp_path)
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout
    assert "Eve\\x1b[2J\\x1b[H" in out.stdout
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and lines[1].startswith("    hi\\n#99")  # the fake entry stays inside the real one
    assert lines[2].startswith("    delivery: ")


def test_each_message_shows_its_delivery_per_channel(tmp_path, run):
    """Delivered, failing (tries and the reason) and not yet tried, in text and --json."""
    from bot.store import NotifyConfig
    from bot.store.notify import parse_targets

    async def go():
        st = await SqlStore.open(data_dir=tmp_path, notify=NotifyConfig(parse_targets("https://hooks.example/a, mailto:o@example.com")))
        a = await st.save_message(NewMessage(call_sid="CA1", caller="+15550001", name="Ann", callback_number="5550001", about="x"))
        b = await st.save_message(NewMessage(call_sid="CA2", caller="+15550002", name="Bob", callback_number="5550002", about="y"))
        for item in await st.claim_due(lease_s=30):
            if item.channel == "webhook" and item.payload["message"]["id"] == a:
                await st.delivered(item.id)
            elif item.channel == "email" and item.payload["message"]["id"] == a:
                await st.failed(item.id, retry_in=0, error="smtp: ConnectionRefusedError")
            else:
                await st.failed(item.id, retry_in=0, error="webhook answered HTTP 500") if item.channel == "webhook" else None
        await st.close()
        return a, b

    a, b = asyncio.run(go())
    rows = {r["id"]: r for r in map(json.loads, run(tmp_path, "--json").stdout.splitlines())}
    assert [(d["channel"], d["state"], d["attempts"]) for d in rows[a]["delivery"]] == [("webhook", "delivered", 1), ("email", "failing", 1)]
    assert rows[a]["delivery"][1]["last_error"] == "smtp: ConnectionRefusedError"
    assert {d["channel"]: d["state"] for d in rows[b]["delivery"]} == {"webhook": "failing", "email": "pending"}
    assert rows[a]["uid"] != rows[b]["uid"] and len(rows[a]["uid"]) == 36
    text = run(tmp_path).stdout
    assert "delivery: webhook delivered, email failing (1 try: smtp: ConnectionRefusedError)" in text
    assert "delivery: webhook failing (1 try: webhook answered HTTP 500), email pending (1 try)" in text


def test_parse_since():
    tz = ZoneInfo("Europe/Paris")
    assert parse_since("2h", tz, now=10_000.0) == 10_000.0 - 7200
    assert parse_since("1.5d", tz, now=200_000.0) == 200_000.0 - 1.5 * 86400
    assert parse_since("2026-07-01T12:00", tz) == parse_since("2026-07-01T10:00+00:00", tz)
    assert safe("a\tb\x07\x9b") == "a\\tb\\x07\\x9b"
    with pytest.raises(Exception, match="ISO"):
        parse_since("soon", tz)
