"""/console: the key once, then a signed session cookie; pages; mark handled with CSRF;
CSV export. The browser test at the end drives real Chromium (the system package)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
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
    for forged in (f"{int(expiry) + 999}.{nonce}.{mac}", f"{expiry}.{nonce}.{'0' * 64}", f"{int(time.time()) - 5}.{nonce}.{mac}", "x"):
        assert (await client.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={forged}"})).status == 401, forged


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


async def test_providers_page_shows_stages(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    html = await (await client.get("/console/providers")).text()
    assert "stt" in html and "scripted" in html.lower()


# --- real Chromium ------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (.ci/run installs the system package: apt-get install chromium)")
async def test_console_in_chromium(aiohttp_server, settings, tmp_path):
    from playwright.async_api import async_playwright

    from bot.simulator import simulate_call
    from tests.conftest import caller_path

    app = make_app(settings, end_silence_ms=500, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5)
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
    await store.save_message(NewMessage(call_sid="CA2", caller="+15551230002", name="Tom", callback_number="5558675309", about="Leaking pipe", urgent=True, complete=False))
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            await page.goto(base + "/console")
            assert page.url.endswith("/console/login")
            await page.fill("#key", KEY)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#calls")
            row = page.locator("#calls tbody tr", has_text="+15551230001")
            assert "answered" in await row.inner_text()
            await page.screenshot(path=str(shots / "console-calls.png"), full_page=True)
            await row.get_by_role("link", name="details").click()
            await page.wait_for_selector("#latency svg")
            bars = page.locator("#latency svg rect.bar")
            assert await bars.count() == len(rec.turns)
            assert float(await bars.first.get_attribute("height")) > 2
            await page.locator("#latency").screenshot(path=str(shots / "console-call-latency.png"))
            await page.screenshot(path=str(shots / "console-call.png"), full_page=True)
            await page.click("text=Messages")
            await page.wait_for_selector(f"#message-{mid}")
            await page.screenshot(path=str(shots / "console-messages.png"), full_page=True)
            await page.locator(f"#message-{mid}").get_by_role("button", name="Mark handled").click()
            await page.wait_for_selector(f"#message-{mid}.status-handled")
            cookies = await page.context.cookies()
            (session,) = [c for c in cookies if c["name"] == COOKIE]
            assert session["httpOnly"] and session["sameSite"] == "Strict"
        finally:
            await browser.close()
    assert (await store.message(mid)).status == "handled"
