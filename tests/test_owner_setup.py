"""The owner's first week (issue 22): the landing page, `--help | head`, `check` listing every
problem at once (the business file's and unreachable notification targets too), `notify --test`
through the real channels against receivers on 127.0.0.1, `bot call` following HOST/PORT and saying
when nothing answers, and owner-facing times in the business's zone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from bot.providers.registry import Providers
from bot.settings import Settings, SettingsError
from bot.shell.cli_call import check_url, default_url
from bot.shell.cli_check import check
from bot.store.channels import describe
from handlers.app import create_app
from tests.conftest import REPO
from tests.fakes.notify_receivers import Inbox, SmtpHandler, twilio_sms_app, webhook_app
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.test_outbox import free_port, start_http

BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
OFFICE = (REPO / "examples" / "business" / "property-office.toml").read_text()


def business(tmp_path, notify: str = "", extra: str = "", name: str = "biz.toml"):
    """The bundled office with its [notify] section replaced (and ``extra`` appended)."""
    head, _, tail = OFFICE.partition("[notify]")
    rest = tail[tail.index("\n[[") :] if "\n[[" in tail else ""
    p = tmp_path / name
    p.write_text(head + "[notify]\n" + notify + "\n" + rest + extra)
    return p


def scripted(settings):
    return create_app(settings, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)


# ---------------------------------------------------------------- GET /


async def test_the_landing_page_links_softphone_console_and_health(aiohttp_client, settings):
    client = await aiohttp_client(scripted(settings))
    r = await client.get("/")
    html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    for href in ('href="/phone"', 'href="/console"', 'href="/healthz"'):
        assert href in html
    assert "Trial mode" in html  # the settings fixture is a trial
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert (await client.get("/nothing-here")).status == 404


# ---------------------------------------------------------------- --help | head


@pytest.mark.parametrize("args", [["--help"], ["check"], ["notify", "--help"]])
def test_a_closed_pipe_ends_quietly(args):
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as `| head` does once it has its lines
    try:
        r = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, env=BASE_ENV | {"TRIAL": "true"},
                           stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode == 141


# ---------------------------------------------------------------- check


def test_check_lists_the_business_files_problems_with_ten_environment_errors(tmp_path):
    bad = business(tmp_path, extra='\n[[faqs]]\nquestion = ""\nkeywords = []\nanswer = ""\n')
    text = bad.read_text().replace('monday = "09:00-17:00"', 'monday = "9 to 5"').replace('timezone = "America/New_York"', 'timezone = "Mars/Olympus"')
    bad.write_text(text.replace('no_answer_s = 25', 'no_answer_s = 500'))
    env = {
        "PORT": "eighty", "LOG_LEVEL": "loud", "STT_PROVIDER": "google", "MAX_CALLS": "0", "END_SILENCE_MS": "x",
        "VAD_AGGRESSIVENESS": "9", "STT_TIMEOUT": "-1", "LLM_TIMEOUT": "soon", "MAX_CALL_S": "0", "SMTP_PORT": "0",
        "BUSINESS_FILE": str(bad),
    }
    errors, _ = check(env)
    assert len([e for e in errors if not e.startswith("BUSINESS_FILE")]) >= 10, errors
    business_lines = [e.split("biz.toml: ", 1)[1] for e in errors if e.startswith("BUSINESS_FILE")]
    assert [b.split(":")[0] for b in business_lines] == ["timezone", "hours.monday", "faqs[6].answer", "faqs[6]", "transfer.no_answer_s"], errors
    r = subprocess.run([sys.executable, "-m", "bot", "check"], cwd=tmp_path, env=BASE_ENV | env | {"PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Mars/Olympus" in r.stdout and "PORT='eighty'" in r.stdout, r.stdout


def test_trial_alone_warns_about_nothing_it_was_not_told():
    errors, warnings = check({"TRIAL": "true"})
    assert errors == [] and warnings == [], (errors, warnings)
    _, warnings = check({"TRIAL": "true", "TWILIO_VALIDATE": "false"})
    assert any(w.startswith("TWILIO_VALIDATE=false") for w in warnings), warnings  # set by the owner: said
    r = subprocess.run([sys.executable, "-m", "bot", "check"], cwd=REPO, env=BASE_ENV | {"TRIAL": "true"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "warning" not in r.stdout and "TWILIO_VALIDATE" not in r.stdout, r.stdout
    assert "note: TRIAL=true" in r.stdout


def test_check_names_notification_targets_the_settings_cannot_reach(tmp_path):
    notify = 'webhook_url = "https://hooks.example.com/x"\nemail_to = ["office@example.com"]\nurgent_sms_to = ["+15551230199"]\n'
    biz = business(tmp_path, notify)
    errors, _ = check({"TRIAL": "true", "BUSINESS_FILE": str(biz)})
    joined = "\n".join(errors)
    assert "mailto:office@example.com" in joined and "SMTP_HOST and SMTP_FROM" in joined, errors
    assert "sms:+15551230199" in joined and "TWILIO_SMS_FROM" in joined and "TWILIO_ACCOUNT_SID" in joined, errors
    assert "https://hooks.example.com/x" in joined and "NOTIFY_WEBHOOK_SECRET" in joined, errors
    assert len(errors) == 3
    ready = {"TRIAL": "true", "BUSINESS_FILE": str(biz), "SMTP_HOST": "smtp.example.com", "SMTP_FROM": "bot@example.com",
             "TWILIO_SMS_FROM": "+15550009999", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "tok",
             "NOTIFY_WEBHOOK_SECRET": "s" * 32}
    assert check(ready) == ([], [])
    # the server refuses these settings as check does (it would retry for ever, never arriving)
    with pytest.raises(SettingsError, match="SMTP_HOST"):
        scripted(Settings.from_env({"TRIAL": "true", "BUSINESS_FILE": str(biz), "DATA_DIR": str(tmp_path)}))
    # the bundled files notify nobody, so a trial starts clean
    assert check({"TRIAL": "true", "BUSINESS_FILE": str(REPO / "examples/business/dental-practice.toml")}) == ([], [])


# ---------------------------------------------------------------- notify --test


def _notify(env: dict, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "notify", *args], cwd=cwd or REPO, env=BASE_ENV | env | {"PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=90)


async def test_notify_test_reaches_every_target_through_the_real_channels(tmp_path):
    secret = "w" * 32
    inbox = Inbox(secret=secret)
    hook_runner, hook_port = await start_http(webhook_app(inbox))
    sms_runner, sms_port = await start_http(twilio_sms_app(inbox))
    smtp_port = free_port()
    smtp = Controller(SmtpHandler(inbox), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    notify = (f'webhook_url = "http://127.0.0.1:{hook_port}/hook"\nemail_to = ["office@example.com"]\n'
              'urgent_sms_to = ["+15551230199"]\n')
    env = {"BUSINESS_FILE": str(business(tmp_path, notify)), "NOTIFY_WEBHOOK_SECRET": secret, "SMTP_HOST": "127.0.0.1",
           "SMTP_PORT": str(smtp_port), "SMTP_TLS": "none", "SMTP_FROM": "bot@example.com", "TWILIO_SMS_FROM": "+15550009999",
           "TWILIO_ACCOUNT_SID": "AC" + "2" * 32, "TWILIO_AUTH_TOKEN": "tok", "TWILIO_BASE_URL": f"http://127.0.0.1:{sms_port}"}
    try:
        listed = await asyncio.to_thread(_notify, env)
        assert listed.returncode == 0 and listed.stdout.count("ready") == 3, listed.stdout + listed.stderr
        assert not inbox.hooks and not inbox.mails and not inbox.sms  # listing sends nothing
        sent = await asyncio.to_thread(_notify, env, "--test")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.count("sent ") == 3 and "(urgent only)" in sent.stdout, sent.stdout
        assert len(inbox.hooks) == 1 and inbox.hooks[0]["signed"] and inbox.hooks[0]["body"]["event"] == "test"
        assert inbox.mails[0]["to"] == ["office@example.com"] and inbox.mails[0]["subject"].startswith("Test notification from Maple Street")
        assert inbox.sms[0]["form"]["To"] == "+15551230199" and "test" in inbox.sms[0]["form"]["Body"]
        # the mail's time is in the business's zone, named
        assert "EST)" in inbox.mails[0]["text"] or "EDT)" in inbox.mails[0]["text"], inbox.mails[0]["text"]

        smtp.stop()  # the mail server goes away; the others still answer
        inbox.hook_status = 500
        failed = await asyncio.to_thread(_notify, env, "--test")
        assert failed.returncode == 1, failed.stdout
        lines = {line.split()[1]: line for line in failed.stdout.splitlines() if line.startswith(("sent", "FAILED"))}
        assert lines["email"].startswith("FAILED") and "smtp" in lines["email"], failed.stdout
        assert lines["webhook"].startswith("FAILED") and "HTTP 500" in lines["webhook"], failed.stdout
        assert lines["sms"].startswith("sent"), failed.stdout
        assert "2 of 3" in failed.stdout
    finally:
        await hook_runner.cleanup()
        await sms_runner.cleanup()


def test_notify_says_when_nobody_is_told_and_what_a_target_needs(tmp_path):
    r = _notify({"TRIAL": "true"}, "--test")
    assert r.returncode == 1 and "nobody is notified" in r.stdout and "property-office.toml" in r.stdout, r.stdout
    r = _notify({"BUSINESS_FILE": str(business(tmp_path, 'email_to = ["office@example.com"]\n'))}, "--test")
    assert r.returncode == 1 and "FAILED" in r.stdout and "SMTP_HOST and SMTP_FROM" in r.stdout, r.stdout
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------- bot call: HOST, PORT, nothing there


def test_bot_call_follows_host_and_port():
    assert default_url({}) == "http://127.0.0.1:8080"
    assert default_url({"PORT": "9123"}) == "http://127.0.0.1:9123"
    assert default_url({"HOST": "0.0.0.0", "PORT": "80"}) == "http://127.0.0.1:80"
    assert default_url({"HOST": "10.1.2.3", "PORT": "8443"}) == "http://10.1.2.3:8443"
    assert default_url({"HOST": "::1"}) == "http://[::1]:8080"
    with pytest.raises(ValueError, match="PORT"):
        default_url({"PORT": "eighty"})
    assert check_url("https://bot.example.com") == "https://bot.example.com"
    for bad in ("foo", "http://127.0.0.1:99999", "http://:80", "ftp://host", "http://host:0"):
        with pytest.raises(ValueError, match="--url"):
            check_url(bad)


def test_bot_call_says_plainly_when_nothing_answers(tmp_path):
    port = free_port()  # bound and released: nothing listens there
    wav = REPO / "examples" / "callers" / "yes_joe.wav"
    r = subprocess.run([sys.executable, "-m", "bot", "call", str(wav), "--no-transcribe", "--out", str(tmp_path / "h.wav")],
                       cwd=tmp_path, env=BASE_ENV | {"PORT": str(port), "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "", r.stdout  # no report of a call that never happened
    assert f"nothing answers at http://127.0.0.1:{port}" in r.stderr and "Is the server running?" in r.stderr, r.stderr
    assert not (tmp_path / "h.wav").exists()


# ---------------------------------------------------------------- times in the business's zone


def test_owner_times_default_to_the_business_files_zone(tmp_path):
    assert Settings.from_env({"TRIAL": "true"}).timezone == "America/New_York"  # the bundled office
    dental = str(REPO / "examples/business/dental-practice.toml")
    assert Settings.from_env({"TRIAL": "true", "BUSINESS_FILE": dental}).timezone == "Europe/London"
    assert Settings.from_env({"TRIAL": "true", "BUSINESS_FILE": dental, "TIMEZONE": "Asia/Tokyo"}).timezone == "Asia/Tokyo"
    broken = tmp_path / "broken.toml"
    broken.write_text('timezone = "Mars/Olympus"\n')
    assert Settings.from_env({"TRIAL": "true", "BUSINESS_FILE": str(broken)}).timezone == "UTC"  # its own check says why
    assert Settings.from_env({"TRIAL": "true", "BUSINESS_FILE": str(tmp_path / "missing.toml")}).timezone == "UTC"
    ts = datetime(2026, 7, 1, 16, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    payload = {"event": "message", "message": {"created_at": ts, "urgent": False, "status": "new", "name": "Ann", "callback_number": "555",
                                               "caller": "+1555", "call_sid": "CA1", "about": "x", "id": 1}}
    _, text = describe(payload, Settings.from_env({"TRIAL": "true"}).timezone)
    assert "When: Wed 01 Jul 12:30 EDT" in text  # 16:30 UTC is 12:30 in New York, and it says so
