"""The fault matrix: every stage x {500, 429, hang, reset, garbage, empty}, through the
real SDKs against the wire fakes on 127.0.0.1.

Phone path: the failing turn gives the fallback prompt (bounded by the stage timeout),
the call stays up, and the next turn is answered. API path: the structured error that
names the stage, within the stage timeout + 100 ms.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.carriers.twilio.simulator import simulate_call
from handlers.app import create_app
from handlers.state import METRICS
from tests.conftest import caller_path, caller_wav
from tests.fakes.cloud import FakeBehaviour, cloud_app, cloud_settings

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

TOKEN = "fault-matrix-token"
TIMEOUT = 2.5  # roomy enough for a busy machine; the "hang" faults still prove the budget cuts them
# Bounds here prove a fault is cut off by the stage budget (a hang would otherwise run
# forever); the slack is for a machine whose cores are busy. bench/faults.py measures
# the tight numbers.
SLACK_S = 2.0
YES = caller_path("yes_joe.wav")
OPEN = caller_path("open_tomorrow_joe.wav")
MODES = {
    "500": "upstream_error",
    "429": "rate_limited",
    "hang": "timeout",
    "reset": "upstream_error",
    "garbage": "bad_response",
    "empty": "empty_result",
}
CASES = [(stage, mode) for stage in ("stt", "llm", "tts") for mode in MODES]


async def _rig(aiohttp_server, settings, **kw):
    fakes = {"stt": FakeBehaviour(), "llm": FakeBehaviour(reply="We open at nine."), "tts": FakeBehaviour(ms_per_char=40)}
    server = await aiohttp_server(cloud_app(**fakes))
    root = str(server.make_url("")).rstrip("/")
    s = cloud_settings(settings, root, TIMEOUT, greeting_text="Hello.", fallback_text="Sorry, say that again?", stt_streaming=False, **kw)
    app = create_app(s, embedded_prompt_fallback=False)
    return app, fakes


@pytest.mark.parametrize(("stage", "mode"), CASES, ids=[f"{s}-{m}" for s, m in CASES])
async def test_phone_fault_gives_fallback_and_the_call_goes_on(aiohttp_server, settings, stage, mode):
    app, fakes = await _rig(aiohttp_server, settings, twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=500)
    server = await aiohttp_server(app)
    fakes[stage].mode, fakes[stage].fail_left = mode, 1  # armed after start-up: prompts rendered fine
    report = await simulate_call(str(server.make_url("")).rstrip("/"), [YES, OPEN], auth_token=TOKEN)

    assert not report.hung_up_by_bot and len(report.turns) == 2, report.events
    assert "fallback-t1" in report.marks_echoed, report.marks_echoed
    assert "t2s0" in report.marks_echoed, report.marks_echoed  # the next turn was answered
    assert app[METRICS].stage_errors.labels(stage, MODES[mode])._value.get() == 1
    # the fallback began no later than end-of-turn silence + the stage budget (+ slack
    # for the 20 ms frame clock and the loopback)
    first = report.turns[0].first_audio_ms
    assert first is not None and first <= 500 + (TIMEOUT + SLACK_S) * 1000, first


@pytest.mark.parametrize(("stage", "mode"), CASES, ids=[f"{s}-{m}" for s, m in CASES])
async def test_api_fault_names_the_stage(aiohttp_server, aiohttp_client, settings, stage, mode):
    app, fakes = await _rig(aiohttp_server, settings, twilio_validate=False)
    client = await aiohttp_client(app)
    fakes[stage].mode = mode
    t0 = asyncio.get_running_loop().time()
    r = await client.post("/v1/orchestrate", data=caller_wav("yes_joe.wav"), headers={"Content-Type": "audio/wav"})
    spent = asyncio.get_running_loop().time() - t0
    body = await r.text()
    assert r.status == (504 if mode == "hang" else 502), body
    err = json.loads(body)["error"]
    assert (err["stage"], err["code"], err["retryable"]) == (stage, MODES[mode], True)
    assert "Traceback" not in body and "key" not in err["message"].lower()
    assert spent <= TIMEOUT + SLACK_S  # the stage budget, plus the stages before it and a busy machine
