"""A whole phone call through the three official SDKs (Deepgram, OpenAI, ElevenLabs),
pointed at wire-level fakes on 127.0.0.1. The ElevenLabs fake speaks with piper, so
what the caller heard can be transcribed back and checked."""

from __future__ import annotations

import pytest

from bot.simulator import simulate_call
from bot.wer import normalize
from handlers.app import create_app
from media import mulaw
from tests.conftest import SHARED_AUDIO, piper_speaker
from tests.fakes.cloud import FakeBehaviour, cloud_app

pytestmark = pytest.mark.xdist_group("embedded")

TOKEN = "cloud-call-token"
OPEN = SHARED_AUDIO / "callers" / "open_tomorrow_joe.wav"
HOURS = "We open at nine tomorrow morning."


async def test_call_through_the_three_sdks_batch_stt(aiohttp_server, settings, engines):
    stt, tts = engines
    dg = FakeBehaviour(transcript="What time do you open tomorrow morning?")
    oa = FakeBehaviour(reply=HOURS)
    el = FakeBehaviour(speak=piper_speaker(tts))
    fakes = await aiohttp_server(cloud_app(stt=dg, llm=oa, tts=el))
    root = str(fakes.make_url("")).rstrip("/")
    s = settings.with_(
        stt_provider="deepgram", llm_provider="openai", tts_provider="elevenlabs",
        deepgram_api_key="dg-key", openai_api_key="sk-key", elevenlabs_api_key="xi-key",
        deepgram_base_url=root, openai_base_url=root + "/v1", elevenlabs_base_url=root,
        twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=500, stt_streaming=False,
        stt_timeout=2.0, llm_timeout=2.0, tts_timeout=2.0,
    )
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
