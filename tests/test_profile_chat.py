"""The business profile (checked whole, every problem listed at once; the examples load;
texts and replaced settings) and ``python -m bot chat`` (text in, replies and actions out,
no speech models)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from bot.profile import Notify, ProfileError, load_profile, prompt_texts_from
from bot.settings import Settings, SettingsError
from handlers.app import prompt_texts
from tests.test_receptionist import EXAMPLES, REPO_ROOT

BAD = """
name = ""
timezone = "Mars/Olympus"
address = "1 Road"
colour = "blue"

[hours]
monday = "9am-5pm"
tuesday = "17:00-09:00"
funday = "closed"

[[closures]]
date = "December 25"

[[faqs]]
keywords = "rent"
answer = "Due on the first."

[emergency]
keywords = ["flood"]
transfer = "plumber"

[transfer]
on_call = "call Bob"
no_answer_s = 2

[notify]
email_to = ["not-an-address"]
urgent_webhook_url = "ftp://x"
"""


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(BAD)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    text = str(info.value)
    for key in ("name:", "timezone: unknown timezone 'Mars/Olympus'", "colour: unknown key", "hours.monday: '9am-5pm'",
                "hours.tuesday: '17:00-09:00' closes before it opens", "hours.funday: not a weekday", "closures[0].date",
                "faqs[0].keywords", "emergency.say: required", "emergency.transfer: 'plumber' is not a purpose",
                "transfer.on_call: 'call Bob' is not a phone number", "transfer.no_answer_s", "notify.email_to",
                "notify.urgent_webhook_url"):
        assert key in text, key
    assert str(path) in text and "15 problem(s)" in text
    assert isinstance(info.value, SettingsError)  # start-up reports it as a configuration error


def test_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("name = ")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "nope.toml")


def test_examples_load_and_answer_transfer_purposes():
    office = load_profile(EXAMPLES / "property-office.toml")
    dental = load_profile(EXAMPLES / "dental-practice.toml")
    assert office.name.startswith("Maple") and dental.timezone == "Europe/London"
    at_2am = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert office.transfer_number("emergency", at_2am) == office.transfer.on_call
    assert office.transfer_number("front_desk", at_2am) == ""
    assert office.transfer_number("front_desk", datetime(2026, 11, 24, 15, 0, tzinfo=UTC)) == office.transfer.front_desk
    christmas = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)
    assert not office.is_open(christmas) and office.notify == Notify()  # the bundled file notifies nobody until the owner fills it in


def test_prompts_come_from_the_profile_and_text_variables_still_override(tmp_path):
    s = Settings(twilio_validate=False)
    assert prompt_texts(s)["greeting"].startswith("Hello, thanks for calling Maple Street")
    dental = s.with_(business_file=str(EXAMPLES / "dental-practice.toml"))
    assert prompt_texts(dental)["goodbye"] == "Thank you for calling Brightside Dental. Take care, goodbye!"
    env = Settings.from_env({"TWILIO_VALIDATE": "false", "GREETING_TEXT": "Hi there.", "BUSINESS_FILE": str(EXAMPLES / "dental-practice.toml")})
    texts = prompt_texts_from(env, load_profile(env.business_file))
    assert texts["greeting"] == "Hi there." and texts["goodbye"].startswith("Thank you for calling Brightside")


def test_receptionist_config_is_refused_with_what_replaced_it():
    with pytest.raises(SettingsError, match="BUSINESS_FILE"):
        Settings.from_env({"TWILIO_VALIDATE": "false", "RECEPTIONIST_CONFIG": "desk.json"})


def chat(*args: str, stdin: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_", "BUSINESS_", "RECEPTIONIST_"))}
    return subprocess.run([sys.executable, "-m", "bot", "chat", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**e, **(env or {})}, timeout=60)


def test_chat_answers_tomorrows_hours_from_the_business_file():
    out = chat("--now", "2026-11-24T15:00", stdin="what time do you open tomorrow\n")
    assert out.returncode == 0, out.stderr
    assert "Tomorrow, Wednesday, we're open 9 AM to 5 PM." in out.stdout


def test_chat_takes_a_message_prints_actions_and_loads_no_speech_models(tmp_path):
    # the sentence encoder (onnxruntime) is loaded on purpose: chat reads callers as a call does
    code = (
        "import sys; from bot.shell import cli_chat; rc = cli_chat.main(['--business', sys.argv[1], '--now', '2026-11-24T10:00']);"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('faster_whisper', 'piper', 'ctranslate2')"
        " or m in ('bot.providers.whisper', 'bot.providers.piper')]; print('HEAVY', heavy); sys.exit(rc)"
    )
    lines = "I'd like to leave a message about a filling\nAnn Lee 555 123 4567\nyes\nthat's all, bye\n"
    out = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "dental-practice.toml")], input=lines,
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[action] take_message name='Ann Lee' callback=5*******67" in out.stdout and "5551234567" not in out.stdout
    assert "passed your message on" in out.stdout and out.stdout.rstrip().endswith("[action] hangup\nHEAVY []")


def test_chat_with_a_bad_business_file_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    out = chat("--business", str(path), stdin="hello\n")
    assert out.returncode == 2 and "15 problem(s)" in out.stderr


def test_chat_save_queues_the_business_files_notifications_as_a_call_does(tmp_path):
    """--save: the message in DATA_DIR's store, and one outbox row per target of the
    business file's [notify] (and NOTIFY_TO), keyed by the message's uid, for the
    deliverer to send, as a call's message would be."""
    import asyncio
    import re

    from bot.store import SqlStore

    env = {"DATA_DIR": str(tmp_path), "NOTIFY_TO": "https://hooks.example/owner", "NOTIFY_WEBHOOK_SECRET": "whsec-test-0123456789",
           "SMTP_HOST": "127.0.0.1", "SMTP_FROM": "bot@brightside.example"}
    business = tmp_path / "dental.toml"  # the example, with an e-mail target in its [notify]
    business.write_text(re.sub(r"(?m)^email_to = .*$", 'email_to = ["reception@brightside.example"]',
                               (EXAMPLES / "dental-practice.toml").read_text(), count=1))
    lines = "I'd like to leave a message about a filling\nAnn Lee 555 123 4567\nyes\n"
    out = chat("--save", "--business", str(business), "--now", "2026-11-24T10:00", stdin=lines, env=env)
    assert out.returncode == 0, out.stderr
    assert "[saved] message #1, 2 notifications queued" in out.stdout, out.stdout

    async def read():
        st = await SqlStore.open(data_dir=tmp_path)
        try:
            return await st.messages(), await st.outbox_state()
        finally:
            await st.close()

    (m,), rows = asyncio.run(read())
    assert (m.name, m.callback_number, m.status) == ("Ann Lee", "5551234567", "new")
    assert sorted((r["channel"], r["target"]) for r in rows) == [("email", "reception@brightside.example"), ("webhook", "https://hooks.example/owner")]
    assert all(m.uid in r["idem_key"] and r["delivered_at"] is None for r in rows)
