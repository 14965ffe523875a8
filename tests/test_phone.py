"""The browser softphone: its key-for-cookie auth, its transport over a real websocket
(scripted providers), and a whole call in real headless Chromium with a WAV file as
the microphone and the embedded engines (whisper, receptionist, piper)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import wave
from pathlib import Path

import aiohttp
import pytest

from bot.providers.registry import Providers
from handlers.app import create_app, prompt_texts
from handlers.state import CALLS, METRICS, SETTINGS
from media import wav
from tests.conftest import caller_wav
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

KEY = "phone-key-0123456789"


def phone_app(settings, **kw):
    p = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    return create_app(settings.with_(api_key=KEY, end_silence_ms=500, **kw), providers=p, embedded_prompt_fallback=False), p


async def login(client) -> None:
    r = await client.get("/phone?key=" + KEY + "&autostart=1", allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == "/phone?autostart=1"  # the key leaves the address bar
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and KEY not in cookie


async def test_the_key_becomes_a_cookie_and_the_socket_needs_it(aiohttp_client, settings):
    app, _ = phone_app(settings)
    client = await aiohttp_client(app)
    r = await client.get("/phone")
    assert r.status == 401 and "key=" in await r.text()
    assert (await client.get("/phone?key=wrong")).status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await client.ws_connect("/phone/ws")
    assert e.value.status == 403
    await login(client)
    r = await client.get("/phone")
    assert r.status == 200 and 'id="transcript"' in await r.text()
    assert (await client.get("/phone/phone-worklet.js")).status == 200
    assert (await client.get("/phone/../bot/settings.py")).status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError):  # another site's page cannot use the cookie
        await client.ws_connect("/phone/ws", headers={"Origin": "https://evil.example"})


async def test_without_api_key_the_page_is_refused_outside_trial_mode(aiohttp_client, settings):
    scripted = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    app2 = create_app(settings.with_(trial=False), providers=scripted, embedded_prompt_fallback=False)
    client = await aiohttp_client(app2)
    r = await client.get("/phone")
    assert r.status == 401 and "API_KEY" in await r.text()
    assert (await client.get("/phone?key=")).status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/phone/ws")


async def test_trial_mode_without_a_key_opens_the_page(aiohttp_client, settings):
    scripted = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    client = await aiohttp_client(create_app(settings.with_(trial=True, api_key=""), providers=scripted, embedded_prompt_fallback=False))
    r = await client.get("/phone")
    assert r.status == 200 and 'id="transcript"' in await r.text()


async def test_a_browser_call_through_the_transport(aiohttp_client, settings):
    """What the page does, without the page: PCM up, PCM and events down, marks echoed."""
    app, p = phone_app(settings)
    client = await aiohttp_client(app)
    await login(client)
    speech = wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16 + b"\x00" * 16000
    events: list[dict] = []
    audio_bytes = 0
    ws = await client.ws_connect("/phone/ws")
    await ws.send_bytes(b"\x01")  # an odd byte: ignored, not a crash
    await ws.send_str("not json")
    sent = False
    async with asyncio.timeout(15):
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                audio_bytes += len(msg.data)
                continue
            ev = json.loads(msg.data)
            events.append(ev)
            if ev["type"] == "mark":
                await ws.send_str(json.dumps({"type": "mark", "name": ev["name"]}))  # "played"
                if ev["name"] == "greeting" and not sent:
                    sent = True
                    for i in range(0, len(speech), 320):  # paced, as a microphone is
                        await ws.send_bytes(speech[i : i + 320])
                        await asyncio.sleep(0.02)  # no faster than real time (handlers/phone.py)
            if ev["type"] == "latency":
                break
        await asyncio.sleep(0)
    kinds = [e["type"] for e in events]
    assert audio_bytes > 0 and audio_bytes % 320 == 0  # whole 20 ms frames of PCM16
    assert {"type": "transcript", "role": "bot", "turn": None, "text": prompt_texts(settings)["greeting"]} in events
    assert {"type": "transcript", "role": "caller", "turn": 1, "text": p.stt.text} in events
    assert "thinking" in [e.get("state") for e in events if e["type"] == "state"]
    assert kinds[-1] == "latency" and events[-1]["turn"] == 1 and events[-1]["ms"] >= 0
    assert len(app[CALLS]) == 1
    await ws.send_str(json.dumps({"type": "hangup"}))
    async with asyncio.timeout(5):
        async for _ in ws:
            pass
    for _ in range(100):
        if not app[CALLS]:
            break
        await asyncio.sleep(0.05)
    assert not app[CALLS] and app[METRICS].live_calls._value.get() == 0


async def test_busy_when_at_capacity(aiohttp_client, settings):
    app, _ = phone_app(settings, max_calls=1)
    client = await aiohttp_client(app)
    await login(client)
    first = await client.ws_connect("/phone/ws")
    await first.receive()  # the call is up
    second = await client.ws_connect("/phone/ws")
    msg = await second.receive()
    assert json.loads(msg.data) == {"type": "end", "reason": "busy"}
    await first.close()
    await second.close()


# ---------------------------------------------------------------- real Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
QUESTION = "What time do you open on Monday?"  # Monday: the same answer any day the test runs


async def microphone_wav(path: Path, tts) -> None:
    """Silence while the greeting plays, the question (piper's voice), then silence
    long enough for the reply: Chromium loops the file."""

    pcm = b"".join([c async for c in tts.synthesize(QUESTION, mulaw=False)])
    rate = tts.pcm_rate
    silence = lambda s: b"\x00\x00" * int(rate * s)  # noqa: E731
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(silence(4.0) + pcm + silence(14.0))


@pytest.mark.skipif(CHROMIUM is None, reason="needs the system chromium (apt-get install chromium)")
async def test_a_call_from_chromium_with_a_wav_as_the_microphone(aiohttp_server, tmp_path, engines):
    playwright = pytest.importorskip("playwright.async_api")
    from bot.hours import clock_text
    from bot.settings import Settings

    stt, tts = engines
    mic = tmp_path / "mic.wav"
    await microphone_wav(mic, tts)
    from bot.providers.receptionist import Receptionist

    s = Settings(data_dir=tmp_path, twilio_validate=False, api_key=KEY)
    app = create_app(s, providers=Providers(stt=stt, llm=Receptionist.from_settings(s), tts=tts))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*BROWSER_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={mic}"],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/phone?key={KEY}&autostart=1")
            assert "key=" not in page.url  # swapped for the cookie
            bot = '#transcript .line[data-role="bot"]'
            caller = '#transcript .line[data-role="caller"]'
            await page.wait_for_selector(bot, timeout=20_000)
            assert await page.locator(bot).first.text_content() == prompt_texts(s)["greeting"]  # the page greets
            await page.locator("#state", has_text=re.compile(r"^in call")).wait_for(timeout=2_000)
            await page.wait_for_selector(caller, timeout=30_000)
            heard = (await page.locator(caller).first.text_content()).lower()
            assert "monday" in heard, heard
            reply = page.locator(f'{bot}[data-turn="1"]')
            await reply.wait_for(timeout=30_000)
            await page.wait_for_selector("body[data-state='speaking']", state="attached", timeout=20_000)
            shot = tmp_path / "phone.png"
            await page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("PHONEBOT_SCREENSHOT"):
                shutil.copy(shot, os.environ["PHONEBOT_SCREENSHOT"])
            text = await reply.text_content()
            assert clock_text(9 * 60) in text and clock_text(17 * 60) in text, text  # the configured hours
            await page.wait_for_selector('#transcript .line[data-role="bot"][data-turn="1"][data-latency]', state="attached", timeout=10_000)
            await page.click("#hangup")
            await page.wait_for_selector("body[data-state='ended']", state="attached", timeout=10_000)
        finally:
            await browser.close()



@pytest.mark.skipif(CHROMIUM is None, reason="needs the system chromium (apt-get install chromium)")
async def test_the_page_idle_then_in_a_call(aiohttp_server, settings, tmp_path):
    """The page as a caller first sees it: what to do, a 3x4 keypad that is off while idle;
    then a call (Chromium's fake microphone, scripted providers): "connecting" gives way to
    "in call" once the greeting shows, and the keypad works. PHONE_SCREENSHOTS=docs/screenshots
    refreshes the committed screenshots."""
    playwright = pytest.importorskip("playwright.async_api")
    app, _ = phone_app(settings)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    said = wav.read(caller_wav("open_tomorrow_joe.wav"))  # the microphone: quiet, a question, quiet (looped)
    mic = tmp_path / "mic.wav"
    mic.write_bytes(wav.write_pcm16(b"\x00\x00" * said.rate * 3 + said.pcm16 + b"\x00\x00" * said.rate * 8, said.rate))
    shots = Path(os.environ.get("PHONE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=[*BROWSER_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                                 f"--use-file-for-fake-audio-capture={mic}"])
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 640})
            await page.goto(f"{base}/phone?key={KEY}")
            keys = page.locator("#keypad button")
            assert [await k.text_content() for k in await keys.all()] == list("123456789*0#")
            assert all([await k.is_disabled() for k in await keys.all()])  # idle: nothing to dial into
            boxes = [await k.bounding_box() for k in await keys.all()]
            rows = sorted({round(b["y"]) for b in boxes})
            cols = sorted({round(b["x"]) for b in boxes})
            assert len(rows) == 4 and len(cols) == 3  # a 3x4 grid, not one wrapping row
            assert await page.locator("#state").text_content() == "idle"
            assert "press Call" in await page.locator("#how").inner_text()
            assert await page.locator("#hangup").is_disabled() and not await page.locator("#call").is_disabled()
            await page.screenshot(path=str(shots / "phone-idle.png"))

            await page.click("#call")
            bot = '#transcript .line[data-role="bot"]'
            await page.wait_for_selector(bot, timeout=10_000)
            assert await page.locator(bot).first.text_content() == prompt_texts(app[SETTINGS])["greeting"]
            await page.locator("#state", has_text=re.compile(r"^in call")).wait_for(timeout=2_000)
            assert not any([await k.is_disabled() for k in await keys.all()])
            await page.wait_for_selector('#transcript .line[data-role="bot"][data-latency]', timeout=20_000)
            await page.screenshot(path=str(shots / "phone-in-call.png"))
            await page.click("#hangup")
            await page.wait_for_selector("body[data-call='ended']", state="attached", timeout=10_000)
            assert await page.locator("#state").text_content() == "call ended"
            assert all([await k.is_disabled() for k in await keys.all()])
        finally:
            await browser.close()
