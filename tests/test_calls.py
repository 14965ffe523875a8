"""Whole phone calls over real websockets: the simulator plays Twilio against the
app (scripted providers), with the shared caller audio."""

from __future__ import annotations

import pytest

from bot.errors import StageError
from bot.providers.base import Action
from bot.providers.registry import Providers
from bot.simulator import simulate_call
from handlers.app import create_app
from tests.conftest import SHARED_AUDIO
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

TOKEN = "test-auth-token"
OPEN = SHARED_AUDIO / "callers" / "open_tomorrow_joe.wav"
ADDRESS = SHARED_AUDIO / "callers" / "address_joe.wav"


def phone_settings(settings, **kw):
    base = dict(twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=500, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5)
    return settings.with_(**(base | kw))


async def serve(aiohttp_server, settings, **kw):
    p = Providers(stt=kw.get("stt") or ScriptedSTT(), llm=kw.get("llm") or ScriptedLLM(), tts=kw.get("tts") or ScriptedTTS())
    app = create_app(settings, providers=p, embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    return server, p, app


def url(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def test_greeting_then_turn(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN)
    assert not report.rejected
    assert report.greeting_ms is not None and report.greeting_ms < 500
    assert "greeting" in report.marks_echoed
    assert len(report.turns) == 1 and report.turns[0].first_audio_ms is not None
    assert any(m.startswith("t1s") for m in report.marks_echoed)
    # the LLM saw the caller's words as the user turn
    assert p.llm.seen[-1][-1] == {"role": "user", "content": p.stt.text}
    assert p.tts.texts[-2:] == ["We open at nine.", "We close at five."]
