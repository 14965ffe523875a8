"""Whole calls on the streaming path: Deepgram's live socket (SDK, wire fake) decides
the end of each turn; OpenAI and ElevenLabs through their SDKs against fakes."""

from __future__ import annotations

import pytest

from bot.carriers.twilio.simulator import simulate_call
from handlers.app import create_app
from handlers.state import METRICS
from tests.conftest import caller_path
from tests.fakes.cloud import FakeBehaviour, _deepgram_routes, _elevenlabs_routes, _openai_routes, cloud_settings
from tests.fakes.deepgram_live import LiveBehaviour, live_routes

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

TOKEN = "live-call-token"
OPEN = caller_path("open_tomorrow_joe.wav")
ADDRESS = caller_path("address_joe.wav")


async def _rig(aiohttp_server, settings, live: LiveBehaviour, **kw):
    from aiohttp import web

    batch, oa, el = FakeBehaviour(transcript="Batch transcript."), FakeBehaviour(reply="We open at nine."), FakeBehaviour(ms_per_char=40)
    fake = web.Application()
    fake.add_routes(live_routes(live) + _deepgram_routes(batch) + _openai_routes(oa) + _elevenlabs_routes(el))
    server = await aiohttp_server(fake)
    root = str(server.make_url("")).rstrip("/")
    # stage budgets roomy enough for a busy machine: no test here is about a timeout
    s = cloud_settings(
        settings, root, 3.0, twilio_validate=True, twilio_auth_token=TOKEN,
        greeting_text="Hello.", fallback_text="Sorry, say that again?", **kw,
    )
    app = create_app(s, embedded_prompt_fallback=False)
    bot = await aiohttp_server(app)
    return str(bot.make_url("")).rstrip("/"), app, batch, oa


async def test_live_stt_ends_the_turns(aiohttp_server, settings):
    live = LiveBehaviour(transcripts=["What time do you open tomorrow morning?", "Can you tell me your address?"])
    url, app, batch, oa = await _rig(aiohttp_server, settings, live)
    report = await simulate_call(url, [OPEN, ADDRESS], auth_token=TOKEN)
    assert len(report.turns) == 2 and all(t.first_audio_ms is not None for t in report.turns), report.events
    assert {"t1s0", "t2s0"} <= set(report.marks_echoed)
    # the live transcripts were the user turns; the batch API was never used
    users = [m["content"] for m in oa.last.messages if m["role"] == "user"]
    assert users == live.transcripts
    assert batch.requests == []
    # one socket for the call: mu-law 8 kHz straight from Twilio, no transcoding
    assert len(live.connections) == 1
    q = live.last.query
    assert (q["encoding"], q["sample_rate"], q["channels"], q["interim_results"]) == ("mulaw", "8000", "1", "true")
    assert app[METRICS].stt_latency._sum.get() > 0


async def test_live_handshake_refused_falls_back_to_batch_stt(aiohttp_server, settings):
    live = LiveBehaviour(mode="500")
    url, app, batch, oa = await _rig(aiohttp_server, settings, live)
    report = await simulate_call(url, [OPEN], auth_token=TOKEN)
    assert len(report.turns) == 1 and "t1s0" in report.marks_echoed, report.events
    assert len(batch.requests) == 1  # this call used the batch API
    assert oa.last.messages[-1]["content"] == "Batch transcript."
    assert app[METRICS].stage_errors.labels("stt", "upstream_error")._value.get() == 1


async def test_live_socket_dropped_mid_turn_reconnects_and_the_turn_is_kept(aiohttp_server, settings):
    # the socket drops 2 s into the caller's audio; the adapter reconnects and replays
    live = LiveBehaviour(transcripts=["What time do you open tomorrow morning?"], script=["drop"], drop_at_audio_s=2.0)
    url, app, batch, oa = await _rig(aiohttp_server, settings, live, deepgram_reconnect_backoff_s=0.02)
    report = await simulate_call(url, [OPEN], auth_token=TOKEN)
    assert len(live.connections) == 2
    assert len(report.turns) == 1 and "t1s0" in report.marks_echoed, report.events
    assert oa.last.messages[-1]["content"] == live.transcripts[0]
    assert batch.requests == []


async def test_live_socket_lost_for_good_switches_to_batch_and_the_call_goes_on(aiohttp_server, settings):
    # first connection drops mid-utterance, every reconnect is refused: Failed -> batch STT
    live = LiveBehaviour(drop_at_audio_s=2.0, script=["drop", "500", "500", "500", "500"])
    url, app, batch, oa = await _rig(aiohttp_server, settings, live, deepgram_reconnect_backoff_s=0.02)
    report = await simulate_call(url, [OPEN, ADDRESS], auth_token=TOKEN)
    assert len(report.turns) == 2, report.events
    assert "t2s0" in report.marks_echoed or "t1s0" in report.marks_echoed, report.marks_echoed
    assert batch.requests  # the batch API took over
    assert not report.hung_up_by_bot
