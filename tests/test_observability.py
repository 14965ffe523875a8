"""Logs and metrics for an operations team: timestamps with a zone, JSON lines, a
failing stage at WARNING, who ended each call and how, and /metrics after calls."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.errors import StageError
from bot.logs import JsonFormatter, KeyValueFormatter, kv
from bot.providers.failover import FailoverSTT
from tests.conftest import caller_wav, eventually
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT
from tests.test_calls import OPEN, TOKEN, phone_settings, serve, url

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(msg: str = "call ended", level: int = logging.INFO, **fields) -> logging.LogRecord:
    r = logging.LogRecord("handlers.media_ws", level, __file__, 1, msg, None, None)
    r.__dict__.update(kv(**fields))
    return r


def test_text_lines_carry_milliseconds_and_utc():
    line = KeyValueFormatter().format(record(call_sid="CA1", seconds=12.34, ended_by="caller"))
    assert re.match(STAMP + r" INFO handlers\.media_ws call ended call_sid=CA1 seconds=12\.3 ended_by=caller$", line), line


def test_json_lines_keep_fields_and_types():
    line = JsonFormatter().format(record(call_sid="CA1", seconds=12.345, turns=3, bad={"gaps": 1}, skipped=None))
    obj = json.loads(line)
    assert re.fullmatch(STAMP, obj.pop("ts")), line
    assert obj == {"level": "INFO", "logger": "handlers.media_ws", "msg": "call ended", "call_sid": "CA1",
                   "seconds": 12.345, "turns": 3, "bad": {"gaps": 1}}
    assert "\n" not in line


def test_json_lines_hold_a_trace_for_operators():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        r = logging.LogRecord("x", logging.ERROR, __file__, 1, "call failed", None, sys.exc_info())
    obj = json.loads(JsonFormatter().format(r))
    assert obj["level"] == "ERROR" and "ValueError: boom" in obj["exc"]


def fields_of(caplog, msg: str) -> list[tuple[int, dict]]:
    return [(r.levelno, getattr(r, "fields", {})) for r in caplog.records if r.getMessage() == msg]


async def test_a_failing_single_provider_stage_is_a_warning_and_the_call_end_says_why(aiohttp_server, settings, caplog):
    caplog.set_level(logging.INFO)
    stt = ScriptedSTT(error=StageError("stt", "timeout", "no answer", provider="scripted-stt"))
    server, _, _ = await serve(aiohttp_server, phone_settings(settings, max_failures=5), stt=stt)
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN)
    assert "fallback-t1" in report.marks_echoed
    turns = fields_of(caplog, "turn")
    assert turns and all(level == logging.WARNING and f["outcome"] == "stt:timeout" for level, f in turns), turns
    await _call_ended(caplog)
    (level, ended), = fields_of(caplog, "call ended")
    assert (ended["ended_by"], ended["outcome"]) == ("caller", "answered"), ended


async def _call_ended(caplog, n: int = 1) -> None:

    await eventually(lambda: len(fields_of(caplog, "call ended")) >= n, 20, 0.05)


async def test_metrics_after_calls_routes_outcomes_durations_providers_circuits(aiohttp_server, settings, caplog):
    caplog.set_level(logging.INFO)
    # a chain whose first member's key is refused: its circuit opens at once, whisper answers
    stt = FailoverSTT(
        [ScriptedSTT(name="deepgram", error=StageError("stt", "auth", "bad key", retryable=False, provider="deepgram")),
         ScriptedSTT(name="whisper")],
        2.0, share=0.6, threshold=3, cooldown_s=30.0,
    )
    server, _, app = await serve(aiohttp_server, phone_settings(settings, transfer_number="+15550001111"), stt=stt, llm=ScriptedLLM())
    await simulate_call(url(server), [OPEN], auth_token=TOKEN)  # the caller hangs up
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, dtmf={0: "0"})  # presses 0: transfer
    assert report.hung_up_by_bot
    await _call_ended(caplog, 2)
    ends = sorted((f["ended_by"], f["outcome"]) for _, f in fields_of(caplog, "call ended"))
    assert ends == [("caller", "answered"), ("transfer", "transferred")], ends
    async with aiohttp.ClientSession() as http:
        await http.post(url(server) + "/v1/orchestrate", data=caller_wav("yes_joe.wav"), headers={"Content-Type": "audio/wav"})
        await http.get(url(server) + "/no/such/route")
        media_done = _norm('phonebot_http_requests_total{method="GET",route="/twilio/media",status="101"} 2.0')
        for _ in range(200):  # a websocket's request is counted when its handler returns, after the call's last log line
            body = await (await http.get(url(server) + "/metrics")).text()
            if media_done in _norm_all(body):
                break
            await asyncio.sleep(0.05)
    expected = [
        'phonebot_http_requests_total{method="POST",route="/twilio/voice",status="200"} 2.0',
        'phonebot_http_requests_total{method="GET",route="/twilio/media",status="101"} 2.0',
        'phonebot_http_requests_total{method="POST",route="/v1/orchestrate",status="200"} 1.0',
        'phonebot_http_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        'phonebot_http_request_seconds_count{route="/v1/orchestrate",status="200"} 1.0',
        'phonebot_calls_ended_total{ended_by="caller",outcome="answered"} 1.0',
        'phonebot_calls_ended_total{ended_by="transfer",outcome="transferred"} 1.0',
        "phonebot_call_duration_seconds_count 2.0",
        'phonebot_circuit_state{provider="deepgram",stage="stt"} 2.0',
        'phonebot_circuit_state{provider="whisper",stage="stt"} 0.0',
        'phonebot_stage_seconds_count{provider="whisper",stage="stt"} 3.0',
        'phonebot_stage_seconds_count{provider="scripted-llm",stage="llm"} 3.0',
    ]
    missing = [line for line in expected if _norm(line) not in _norm_all(body)]
    assert not missing, (missing, [line for line in body.splitlines() if not line.startswith("#")])
    assert 'route="/twilio/media"' not in "".join(line for line in body.splitlines() if line.startswith("phonebot_http_request_seconds"))


def _norm(line: str) -> str:
    """A sample line with its labels sorted (the exposition order is not ours to fix)."""
    m = re.match(r"(\w+)\{(.*)\} (.*)", line)
    if not m:
        return line
    labels = ",".join(sorted(m.group(2).split(",")))
    return f"{m.group(1)}{{{labels}}} {m.group(3)}"


def _norm_all(body: str) -> set[str]:
    return {_norm(line) for line in body.splitlines() if line and not line.startswith("#")}


