"""A whole phone call through the three official SDKs (Deepgram, OpenAI, ElevenLabs),
pointed at wire-level fakes on 127.0.0.1. The ElevenLabs fake speaks with piper, so
what the caller heard can be transcribed back and checked."""

from __future__ import annotations

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.wer import normalize
from handlers.app import create_app, prompt_texts
from media import mulaw
from tests.conftest import caller_path, piper_speaker
from tests.fakes.cloud import FakeBehaviour, cloud_app, cloud_settings

pytestmark = [pytest.mark.xdist_group("embedded"), pytest.mark.virtual_time]  # virtual_time: tests/virtual_time.py

TOKEN = "cloud-call-token"
OPEN = caller_path("open_tomorrow_joe.wav")
HOURS = "We open at nine tomorrow morning."


async def test_call_through_the_three_sdks_batch_stt(aiohttp_server, settings, engines):
    stt, tts = engines
    dg = FakeBehaviour(transcript="What time do you open tomorrow morning?")
    oa = FakeBehaviour(reply=HOURS)
    texts = {"greeting_text": "Hello, thanks for calling.", "goodbye_text": "Thanks for calling, goodbye."}
    # the fake synthesises each text whole with piper: render every prompt of this app before the call
    el = FakeBehaviour(speak=piper_speaker(tts, warm=[*prompt_texts(settings.with_(**texts)).values(), HOURS]))
    fakes = await aiohttp_server(cloud_app(stt=dg, llm=oa, tts=el))
    root = str(fakes.make_url("")).rstrip("/")
    s = cloud_settings(settings, root, 2.0, twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=500, stt_streaming=False, **texts)
    server = await aiohttp_server(create_app(s, embedded_prompt_fallback=False))
    report = await simulate_call(str(server.make_url("")).rstrip("/"), [OPEN], auth_token=TOKEN)

    assert report.greeting_ms is not None and len(report.turns) == 1
    assert report.turns[0].first_audio_ms is not None
    # each SDK really went over the wire: audio to Deepgram, the history to OpenAI,
    # phone-format synthesis from ElevenLabs (greeting + prompts at start-up, then the reply)
    assert dg.requests and dg.last.body_len > 10_000
    assert dg.last.headers["authorization"] == "Token dg-key"
    assert oa.last.messages[-1] == {"role": "user", "content": dg.transcript}
    assert oa.last.headers["authorization"] == "Bearer sk-key"
    assert {r.query.get("output_format") for r in el.requests} == {"ulaw_8000"}
    assert any(r.json.get("text") == HOURS for r in el.requests)
    # and the caller heard the hours
    heard = await stt.transcribe(mulaw.decode(report.heard), 8000)
    words = normalize(heard)
    assert {"open", "nine", "tomorrow"} <= set(words), heard


async def test_orchestrate_through_the_three_sdks(aiohttp_server, aiohttp_client, settings):
    """Issue 2, done-when 2: WAV in -> Deepgram -> OpenAI -> ElevenLabs (PCM) -> WAV out."""
    from media import wav

    dg = FakeBehaviour(transcript="What time do you open tomorrow morning?")
    oa = FakeBehaviour(reply="We open at nine. We close at five.")
    el = FakeBehaviour(ms_per_char=20)
    fakes = await aiohttp_server(cloud_app(stt=dg, llm=oa, tts=el))
    root = str(fakes.make_url("")).rstrip("/")
    s = cloud_settings(settings, root, 2.0)
    client = await aiohttp_client(create_app(s, embedded_prompt_fallback=False))
    body = caller_path("open_tomorrow_joe.wav").read_bytes()
    r = await client.post("/v1/orchestrate", data=body, headers={"Content-Type": "audio/wav", "Accept": "application/json"})
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["transcript"] == dg.transcript and out["reply"] == oa.reply
    import base64

    reply = wav.read(base64.b64decode(out["audio"]["base64"]))
    assert reply.rate == 16000 and abs(reply.seconds - len(oa.reply.replace(" ", "")) * 0.02) < 0.3
    assert [r.query.get("output_format") for r in el.requests if r.json.get("text") in ("We open at nine.", "We close at five.")] == ["pcm_16000"] * 2
    r = await client.post("/v1/orchestrate?format=mulaw", data=body, headers={"Content-Type": "audio/wav"})
    assert r.status == 200 and wav.read(await r.read()).rate == 8000
    assert el.last.query["output_format"] == "ulaw_8000"  # the phone format, no transcoding
