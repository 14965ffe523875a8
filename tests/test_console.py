"""/console: the key once, then a signed session cookie; pages; mark handled with CSRF;
CSV export. The browser test at the end drives real Chromium (the system package)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.providers.registry import Providers
from bot.store import NewMessage
from handlers.app import create_app
from handlers.session_auth import COOKIE
from handlers.storage import STORE
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

KEY = "console-key-0123456789abcdef"


def make_app(settings, **kw):
    s = settings.with_(api_key=KEY, **kw)
    return create_app(s, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)


async def logged_in(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    r = await client.get(f"/console?key={KEY}", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console"  # the key leaves the address bar
    return client, r


async def csrf_of(client, path="/console/messages") -> str:
    html = await (await client.get(path)).text()
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


async def test_console_is_off_without_an_api_key(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False))
    assert (await client.get("/console")).status == 404
    assert (await client.get(f"/console?key={KEY}", allow_redirects=False)).status == 404


async def test_key_once_then_an_httponly_strict_cookie(aiohttp_client, settings):
    client, r = await logged_in(aiohttp_client, settings)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
    assert KEY not in cookie
    page = await client.get("/console")
    assert page.status == 200 and "Recent calls" in await page.text()
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


async def test_wrong_key_tampered_or_missing_cookie_is_refused(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    r = await client.post("/console/login", data={"key": "wrong"}, allow_redirects=False)
    assert r.status == 401 and COOKIE not in r.cookies
    r = await client.get("/console/messages", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/login"
    assert (await client.get("/console/messages.csv")).status == 401
    r = await client.post("/console/login", data={"key": KEY}, allow_redirects=False)
    assert r.status == 303
    good = r.cookies[COOKIE].value
    expiry, nonce, mac = good.split(".")
    client.session.cookie_jar.clear()
    assert (await client.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={good}"})).status == 200
    for forged in (f"{int(expiry) + 999}.{nonce}.{mac}", f"{expiry}.{nonce}.{'0' * 64}", "x"):
        assert (await client.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={forged}"})).status == 401, forged


async def test_an_expired_cookie_with_a_valid_signature_is_refused(aiohttp_client, settings):
    """Signed as the server signs (a key derived from API_KEY), so only the expiry can refuse
    it: the same cookie with a future expiry is let in."""
    client = await aiohttp_client(make_app(settings))
    key = hmac.new(KEY.encode(), b"phonebot-session-v1", hashlib.sha256).digest()

    def signed(expiry: int) -> str:
        body = f"{expiry}.{secrets.token_urlsafe(16)}"
        return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"

    now = int(time.time())
    assert (await client.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={signed(now + 60)}"})).status == 200
    for expiry in (now - 1, now - 5, now - 13 * 3600, 0):
        assert (await client.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={signed(expiry)}"})).status == 401, expiry


async def test_the_session_lasts_twelve_hours_in_the_browser_and_in_the_signed_expiry(aiohttp_client, settings):
    before = int(time.time())
    _, r = await logged_in(aiohttp_client, settings)
    after = int(time.time())
    morsel = r.cookies[COOKIE]
    assert morsel["max-age"] == str(12 * 3600)
    expiry = int(morsel.value.split(".")[0])
    assert before + 12 * 3600 <= expiry <= after + 12 * 3600


async def test_a_store_that_cannot_say_whether_a_session_was_revoked_refuses_it(aiohttp_client, settings):
    """The revocation check fails (its table is gone, the rest of the store works): the
    session is not trusted, so the console answers 401, not the messages."""
    client, r = await logged_in(aiohttp_client, settings)
    assert (await client.get("/console/messages.csv")).status == 200
    async with client.app[STORE].engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE revoked_sessions")
    assert (await client.get("/console/messages.csv")).status == 401


async def test_mark_handled_needs_the_csrf_token_and_changes_the_database(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    store = client.app[STORE]
    mid = await store.save_message(NewMessage(call_sid="CA1", caller="+15550001", name="Ann <b>", callback_number="5550001", about="=HYPERLINK(1)"))
    html = await (await client.get("/console/messages")).text()
    assert "Ann &lt;b&gt;" in html and "Ann <b>" not in html  # escaped
    r = await client.post(f"/console/messages/{mid}/handled", data={"csrf": "0" * 64}, allow_redirects=False)
    assert r.status == 403 and (await store.message(mid)).status == "new"
    r = await client.post(f"/console/messages/{mid}/handled", data={"csrf": await csrf_of(client)}, allow_redirects=False)
    assert r.status == 303 and (await store.message(mid)).status == "handled"
    assert "No messages with status new" in await (await client.get("/console/messages?status=new")).text()
    assert (await client.get("/console/messages?status=bogus")).status == 400


async def test_csv_export_filters_and_defuses_formulas(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    store = client.app[STORE]
    await store.save_message(NewMessage(call_sid="CA1", caller="+15550001", name="Ann", callback_number="5550001", about="=cmd|' /C calc'!A0"))
    await store.save_message(NewMessage(call_sid="CA2", caller="+15550002", name="Bo", callback_number="5550002", about="leak", complete=False))
    r = await client.get("/console/messages.csv?status=new")
    assert r.headers["Content-Type"].startswith("text/csv") and "attachment" in r.headers["Content-Disposition"]
    lines = (await r.text()).splitlines()
    assert lines[0].startswith("id,created_at,status") and len(lines) == 2
    assert ",'=cmd|" in lines[1] and "Bo" not in lines[1]


async def test_call_search_takes_any_text_and_refuses_an_unknown_outcome(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    store = client.app[STORE]
    await store.call_started(call_sid="CA1", stream_sid="MZ1", caller="+15558675309", started_at=time.time())
    assert "(555) 867-5309" in await (await client.get("/console?number=867-5309")).text()
    for junk in ("<script>alert(1)</script>", "%_%", "\u0663\u0664\u0665", "x" * 5000, "' OR 1=1 --"):
        r = await client.get("/console", params={"number": junk})
        html = await r.text()
        assert r.status == 200 and "<script>alert" not in html and "(555) 867-5309" not in html.split("</form>")[1], junk
    r = await client.get("/console?outcome=bogus")
    assert r.status == 400
    for sid in ("%00CA1", "CA" + "1" * 3000, "%F0%9F%98%80", "..%2F..%2Fetc", "CA1'--"):
        assert (await client.get("/console/calls/" + sid)).status == 404, sid
    assert "(555) 867-5309" in await (await client.get("/console?outcome=live")).text()


async def test_a_failed_transfer_reads_as_failed_in_the_list_the_filter_and_the_call_page(aiohttp_client, settings):
    """A transfer the carrier refused (a SIP REFER declined): the owner sees "transfer failed",
    never "transferred"; the outcome filter finds it; an emergency whose transfer failed stays
    an emergency and its page says the transfer failed."""
    from bot.store.api import Transfer

    client, _ = await logged_in(aiohttp_client, settings)
    store = client.app[STORE]
    now = time.time()
    for sid, outcome, by in (("CAfail", "transfer_failed", "transfer_failed"), ("CAemerg", "emergency", "transfer_failed"),
                             ("CAok", "transferred", "transfer")):
        await store.call_started(call_sid=sid, stream_sid="MZ" + sid, caller="+15558675309", started_at=now - 60)
        await store.call_ended(call_sid=sid, ended_at=now, outcome=outcome, ended_by=by, turns=[], transcript=(),
                               transfer=Transfer("front_desk", "+1********00"))
    listing = await (await client.get("/console?outcome=transfer_failed")).text()
    assert "CAfail" in listing and "CAok" not in listing and "CAemerg" not in listing
    assert 'class="tag transfer_failed">transfer failed<' in listing
    assert '<option value="transfer_failed"' in listing
    for sid, label in (("CAfail", "Transfer failed"), ("CAemerg", "Transfer failed"), ("CAok", "Transferred")):
        page = await (await client.get("/console/calls/" + sid)).text()
        assert f"<dt>{label}</dt>" in page, sid
    assert "<dt>Transfer failed</dt>" not in await (await client.get("/console/calls/CAok")).text()


async def test_providers_page_shows_stages(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    html = await (await client.get("/console/providers")).text()
    assert "stt" in html and "scripted" in html.lower()


# --- real Chromium ------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
T0 = 1_796_000_000.0  # 2026-11-29, a Sunday afternoon in London


async def seed_calls(store) -> None:
    """A week's worth of other calls, written through the store's own API: each outcome,
    callers at home and abroad, a SIP trunk, a withheld number, a failed turn."""
    from bot.store.api import TranscriptLine, Transfer, TurnRecord

    def said(*pairs: tuple[int, str, str]) -> list[TranscriptLine]:
        return [TranscriptLine(n, T0 + i, who, text) for i, (n, who, text) in enumerate(pairs)]

    leak = said(
        (0, "bot", "Hello, thanks for calling Maple Street Property Management. How can I help you today?"),
        (1, "caller", "Hi, there's water leaking under my kitchen sink"),
        (1, "bot", "I'm sorry to hear that. I can take a message for the maintenance team. May I have your name?"),
        (2, "bot", "Sorry, I didn't catch that. Could you say it again?"),
        (3, "caller", "It's Tom Baker"),
        (3, "bot", "Thanks, Tom Baker. What number should we call you back on?"),
        (4, "caller", "five five five, eight six seven, five three oh nine"),
        (4, "bot", "I have five five five, eight six seven, five three zero nine."),
        (5, "caller", "yes, that's right"),
        (5, "bot", "Thanks, Tom Baker. I've passed your message on, and someone will call you back."),
    )
    leak = [ln if ln.text[:5] != "Hello" else TranscriptLine(0, ln.at, "bot", ln.text, "greeting") for ln in leak]
    leak = [ln if not ln.text.startswith("Sorry") else TranscriptLine(2, ln.at, "bot", ln.text, "fallback") for ln in leak]
    leak = [replace(ln, interrupted=True) if ln.text.startswith("I have") else ln for ln in leak]  # the caller said yes over it
    rows = [
        ("CAseed1", "+442079460123", "transferred", "transfer", [TurnRecord(1, T0, 810.0, "ok")], Transfer("front_desk", "+4********23"),
         said((1, "caller", "Can I speak to someone about my lease?"), (1, "bot", "Sure, let me put you through to someone now."))),
        ("CAseed2", "anonymous", "abandoned", "caller", [], None, []),
        ("CAseed3", "sip:+15551112222@trunk.example.com;transport=tls", "failed", "failures",
         [TurnRecord(1, T0, None, "stt:timeout", "stt", "timeout"), TurnRecord(2, T0 + 5, None, "llm:upstream_error", "llm", "upstream_error")], None, []),
        ("CAseed4", "+15558675309", "message", "bot",
         [TurnRecord(1, T0 + 1, 620.0, "ok"), TurnRecord(2, T0 + 3, None, "stt:timeout", "stt", "timeout"), TurnRecord(3, T0 + 4, 1340.0, "ok"),
          TurnRecord(4, T0 + 6, 710.0, "ok"), TurnRecord(5, T0 + 8, 585.0, "ok")], None, leak),
        ("CAseed5", "+15552220199", "message", "bot", [TurnRecord(1, T0, 655.0, "ok"), TurnRecord(2, T0 + 9, 702.0, "ok")], None, []),
    ]
    for i, (sid, caller, outcome, by, turns, transfer, lines) in enumerate(rows):
        at = T0 - (i + 1) * 5400
        turns = [replace(t, started_at=at + t.started_at - T0) for t in turns]
        lines = [replace(ln, at=at + ln.at - T0) for ln in lines]
        await store.call_started(call_sid=sid, stream_sid="MZ" + sid, caller=caller, started_at=at)
        await store.call_ended(call_sid=sid, ended_at=at + 40 + 17 * i, outcome=outcome, ended_by=by, turns=turns, transcript=lines, transfer=transfer)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (.ci/run installs the system package: apt-get install chromium)")
async def test_console_in_chromium(aiohttp_server, settings, tmp_path):
    """The owner's pages in a real browser: a real call's transcript turn by turn, search by
    number, formatted numbers, no "the caller" as a name, the providers as tables. Set
    CONSOLE_SCREENSHOTS=docs/screenshots to refresh the committed screenshots."""
    from playwright.async_api import async_playwright

    from bot.carriers.twilio.simulator import simulate_call
    from tests.conftest import caller_path

    app = make_app(settings, end_silence_ms=500, early_turn_ms=0, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5, store_transcripts=True)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    report = await simulate_call(base, [caller_path("open_tomorrow_joe.wav"), caller_path("address_joe.wav"), caller_path("open_tomorrow_joe.wav")], from_number="+15551230001")
    store = app[STORE]
    for _ in range(100):
        rec = await store.call(report.call_sid)
        if rec and rec.ended_at:
            break
        await asyncio.sleep(0.05)
    assert rec.turns, "the call record has its turns"
    mid = await store.save_message(NewMessage(call_sid=report.call_sid, caller="+15551230001", name="Sarah Johnson", callback_number="5552134467", about="A quote for a boiler service"))
    await store.save_message(NewMessage(call_sid="CAseed4", caller="+15558675309", name="Tom Baker", callback_number="5558675309", about="Water leaking under the kitchen sink", urgent=True))
    await store.save_message(NewMessage(call_sid="CAseed5", caller="+15552220199", name="the caller", callback_number="", about="The gate code does not work", complete=False))
    await store.save_message(NewMessage(call_sid="CAseed1", caller="+442079460123", name="Priya Patel", callback_number="+442079460123", about="Lease renewal for flat 2"))
    await seed_calls(store)
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            await page.goto(base + "/console")
            assert page.url.endswith("/console/login")
            await page.fill("#key", KEY)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#calls")
            row = page.locator("#calls tbody tr", has_text="(555) 123-0001")  # the business's country: national form
            assert "answered" in await row.inner_text()
            text = await page.locator("main").inner_text()
            assert "+44 20 7946 0123" in text and "number withheld" in text and "sip:+15551112222@trunk.example.com" in text
            assert "Times in America/New_York" in text  # the business file's zone
            await page.screenshot(path=str(shots / "console-calls.png"), full_page=True)

            # search by number, in another format than it is stored in, then by outcome
            await page.fill("#number", "555-123 0001")
            await page.click(".search button")
            await page.wait_for_url("**/console?number=*")
            assert await page.locator("#calls tbody tr").count() == 1
            await page.select_option("#outcome", "message")
            await page.click(".search button")
            await page.wait_for_selector("#no-calls")
            assert "No call from or about a number with 555-123 0001 with outcome message" in await page.locator("#no-calls").inner_text()
            await page.goto(base + "/console?number=867+5309")  # the caller ID, and a message's callback number
            assert [await r.inner_text() for r in await page.locator("#calls tbody td.number").all()] == ["(555) 867-5309"]

            await page.goto(base + "/console")
            await page.locator("#calls tbody tr", has_text="(555) 123-0001").get_by_role("link", name="details").click()
            await page.wait_for_selector("#transcript")
            turns = page.locator("#transcript li.turn")
            assert [await t.get_attribute("data-turn") for t in await turns.all()] == ["0", "1", "2", "3"]  # greeting, then in order
            greeting = await turns.nth(0).inner_text()
            assert "How can I help you today?" in greeting
            for n in (1, 2, 3):
                said = page.locator(f'#transcript li.turn[data-turn="{n}"] .said')
                assert [await x.get_attribute("class") for x in await said.all()] == ["said caller", "said bot"]
                assert "what time do you open tomorrow" in await said.nth(0).inner_text()
                assert "We open at nine." in await said.nth(1).inner_text()
                assert f"{round(rec.turns[n - 1].latency_ms)} ms" in await turns.nth(n).locator(".turn-head").inner_text()
            assert "Sarah Johnson" in await page.locator("#left").inner_text()
            bars = page.locator("#latency svg rect.bar")
            assert await bars.count() == len(rec.turns)
            assert float(await bars.first.get_attribute("height")) > 2
            ticks = [await x.text_content() for x in await page.locator("#latency svg text.axis[text-anchor=end]").all()]
            assert ticks == ["0 s", "0.5 s", "1 s", "1.5 s"], ticks
            assert await page.locator("#latency svg .target-label").text_content() == "1 s target"
            await page.screenshot(path=str(shots / "console-call.png"), full_page=True)
            await page.locator("#left a").click()
            await page.wait_for_selector(f"#message-{mid}")

            await page.goto(base + "/console/calls/CAseed1")
            assert "to the front desk, +4********23" in await page.locator("#transfer").inner_text()
            await page.goto(base + "/console/calls/CAseed4")  # a failed turn: the fallback prompt in its place
            failed = await page.locator('#transcript li.turn[data-turn="2"]').inner_text()
            assert "stt: timeout" in failed and "FALLBACK PROMPT" in failed.upper() and "Sorry, I didn't catch that" in failed
            assert "1340 ms" in await page.locator('#transcript li.turn[data-turn="3"] .latency.slow').inner_text()
            assert "INTERRUPTED BY THE CALLER" in (await page.locator('#transcript li.turn[data-turn="4"] .said.bot.interrupted').inner_text()).upper()
            await page.screenshot(path=str(shots / "console-call-message.png"), full_page=True)

            await page.click("text=Messages")
            await page.wait_for_selector(f"#message-{mid}")
            text = await page.locator("#messages").inner_text()
            assert "the caller" not in text and "no name given" in text
            assert "(555) 213-4467" in text and "+44 20 7946 0123" in text
            await page.screenshot(path=str(shots / "console-messages.png"), full_page=True)
            await page.locator(f"#message-{mid}").get_by_role("button", name="Mark handled").click()
            await page.wait_for_selector(f"#message-{mid}.status-handled")
            cookies = await page.context.cookies()
            (session,) = [c for c in cookies if c["name"] == COOKIE]
            assert session["httpOnly"] and session["sameSite"] == "Strict"

            await page.click("text=Providers")
            await page.wait_for_selector("#prompts")
            text = await page.locator("main").inner_text()
            assert "{" not in text and "greeting" in await page.locator("#prompts").inner_text()
            await page.screenshot(path=str(shots / "console-providers.png"), full_page=True)
        finally:
            await browser.close()
    assert (await store.message(mid)).status == "handled"
