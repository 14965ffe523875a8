"""Operations: metrics scrape, capacity, drain, readiness, and log hygiene."""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from bot.carriers.twilio.simulator import simulate_call
from bot.shell.server import drain
from bot.simulator import load_ulaw
from handlers.state import CALLS
from tests.conftest import stream_token
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT
from tests.test_calls import ADDRESS, OPEN, TOKEN, phone_settings, serve, url

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)


async def webhook(server, call_sid="CA" + "1" * 32) -> str:
    params = {"CallSid": call_sid, "From": "+15550001234", "To": "+15550004321"}
    sig = RequestValidator(TOKEN).compute_signature(url(server) + "/twilio/voice", params)
    async with aiohttp.ClientSession() as http:
        r = await http.post(url(server) + "/twilio/voice", data=params, headers={"X-Twilio-Signature": sig})
        assert r.status == 200
        return await r.text()


async def test_metrics_scraped_after_a_call(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    await simulate_call(url(server), [OPEN], auth_token=TOKEN)
    async with aiohttp.ClientSession() as http:
        r = await http.get(url(server) + "/metrics")
        body = await r.text()
    assert r.status == 200 and r.content_type.startswith("text/plain")
    for name in ("phonebot_calls_total 1.0", 'phonebot_turns_total{outcome="ok"} 1.0', "phonebot_live_calls 0.0",
                 "phonebot_turn_latency_seconds_count 1.0", "phonebot_llm_first_token_seconds_count 1.0",
                 "phonebot_tts_first_byte_seconds_count 1.0", "phonebot_mouth_to_ear_seconds_count 1.0"):
        assert name in body, name


async def test_capacity_answers_busy_and_readiness_fails(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings, max_calls=1))
    call = asyncio.create_task(simulate_call(url(server), [OPEN], auth_token=TOKEN))
    for _ in range(100):
        if app[CALLS]:
            break
        await asyncio.sleep(0.05)
    twiml = await webhook(server)
    assert "<Connect>" not in twiml and "<Hangup />" in twiml and "/twilio/prompt/busy.wav" in twiml
    async with aiohttp.ClientSession() as http:
        r = await http.get(url(server) + "/readyz")
        assert r.status == 503 and "at capacity" in (await r.json())["problems"]
        r = await http.get(url(server) + "/twilio/prompt/busy.wav")
        assert r.status == 200 and (await r.read())[:4] == b"RIFF"
        r = await http.get(url(server) + "/livez")
        assert r.status == 200
    await call


async def test_drain_refuses_new_calls_and_ends_live_ones(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    calls = [asyncio.create_task(simulate_call(url(server), [OPEN, ADDRESS, OPEN], auth_token=TOKEN, gap_s=2)) for _ in range(3)]
    for _ in range(100):
        if len(app[CALLS]) == 3:
            break
        await asyncio.sleep(0.05)
    draining = asyncio.create_task(drain(app, 4.0))
    await asyncio.sleep(0.2)
    assert "<Connect>" not in await webhook(server, "CA" + "2" * 32)
    async with aiohttp.ClientSession() as http:
        r = await http.get(url(server) + "/readyz")
        assert r.status == 503 and "draining" in (await r.json())["problems"]
    t = asyncio.get_running_loop().time()
    left = await draining
    assert asyncio.get_running_loop().time() - t <= 4.5
    reports = await asyncio.gather(*calls)
    assert not app[CALLS]
    assert left == 3 and all(r.hung_up_by_bot and "end-goodbye" in r.marks_echoed for r in reports)


async def test_logs_never_hold_numbers_transcripts_keys_or_audio(aiohttp_server, settings, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = dict(deepgram_api_key="dg-SECRET-123", openai_api_key="sk-SECRET-456", elevenlabs_api_key="el-SECRET-789")
    stt = ScriptedSTT(text="my account password is swordfish")
    llm = ScriptedLLM(text="Your balance is forty two dollars. Anything else?")
    server, p, app = await serve(aiohttp_server, phone_settings(settings, transfer_number="+14155550100", **secrets), stt=stt, llm=llm)
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, from_number="+14155550199", to_number="sip:+14155550142@trunk.example.com")
    assert report.turns[0].first_audio_ms is not None
    text = "\n".join(r.getMessage() + " " + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "call_sid=" in text or report.call_sid in text  # the logs do carry the SIDs
    for leak in ["4155550199", "14155550199", "4155550142", "4155550100", "swordfish", "forty two", TOKEN, *secrets.values()]:
        assert leak not in text, leak
    ulaw = load_ulaw(OPEN)
    assert base64.b64encode(ulaw[8000:8160]).decode()[:40] not in text


async def test_drain_goodbye_is_not_barged_into(aiohttp_server, settings):
    """At the drain deadline the bot drops its reply and says goodbye; the caller talking
    over it does not cancel the goodbye or start new turns."""
    from tests.fakes.scripted import ScriptedLLM, ScriptedTTS
    from tests.test_calls import LONG

    server, p, app = await serve(aiohttp_server, phone_settings(settings), llm=ScriptedLLM(text=LONG), tts=ScriptedTTS(ms_per_char=25))
    call = asyncio.create_task(simulate_call(url(server), [OPEN, ADDRESS, OPEN, ADDRESS], auth_token=TOKEN, barge_in_after_ms=800))
    for _ in range(200):  # wait until the bot is speaking its first long reply
        s = next(iter(app[CALLS].values()), None)
        if s is not None and s.state.value == "speaking":
            break
        await asyncio.sleep(0.05)
    turns_before = s.turn_no
    left = await drain(app, 0.0)
    report = await call
    assert left == 1 and report.hung_up_by_bot and "end-goodbye" in report.marks_echoed
    assert s.turn_no <= turns_before + 1  # no new turns once the goodbye started
    assert report.clears >= 1  # the long reply was cut for the goodbye


async def test_caller_hanging_up_mid_reply_is_not_an_error(aiohttp_server, settings, caplog):
    import base64
    import json

    from media import frames, mulaw, wav
    from tests.conftest import caller_wav
    from tests.fakes.scripted import ScriptedLLM, ScriptedTTS
    from tests.test_calls import LONG

    server, p, app = await serve(aiohttp_server, settings.with_(twilio_validate=False, end_silence_ms=400),
                                 llm=ScriptedLLM(text=LONG), tts=ScriptedTTS(ms_per_char=25))
    sid, call = "MZ" + "d" * 32, "CA" + "e" * 32
    speech = mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16) + mulaw.silence(8000)
    caplog.set_level("INFO")
    async with aiohttp.ClientSession() as http, http.ws_connect(url(server).replace("http", "ws") + "/twilio/media") as ws:
        await ws.send_str(json.dumps({"event": "start", "streamSid": sid, "start": {"accountSid": "AC" + "c" * 32, "callSid": call, "streamSid": sid, "tracks": ["inbound"], "customParameters": {"token": stream_token(app, call)}, "mediaFormat": {}}}))
        for i, fr in enumerate(frames.split(speech)):
            await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "sequenceNumber": str(i + 2), "media": {"payload": base64.b64encode(fr).decode()}}))
            await asyncio.sleep(0.005)
        async with asyncio.timeout(10):  # until the reply is streaming
            async for msg in ws:
                d = json.loads(msg.data)
                if d.get("event") == "mark" and d["mark"]["name"].startswith("t1s"):
                    break
        await ws.send_str(json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": call}}))
        await asyncio.sleep(0.5)
    for _ in range(50):
        if not app[CALLS] and any(r.getMessage() == "call ended" for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert not app[CALLS]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(r.getMessage() == "call ended" for r in caplog.records)
