"""Fewer, larger outbound media messages (MEDIA_FRAMES_PER_MESSAGE) over the real
websocket handler: marks, barge-in ``clear`` and "heard" behave as with one frame a message."""

from __future__ import annotations

import logging

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.settings import Settings, SettingsError
from tests.conftest import eventually
from tests.fakes.scripted import ScriptedLLM, ScriptedTTS
from tests.test_calls import ADDRESS, LONG, OPEN, TOKEN, phone_settings, serve, speech_onset_ms, url

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)


def test_the_setting_is_read_and_checked():
    base = {"TWILIO_VALIDATE": "false"}
    assert Settings.from_env(base).media_frames_per_message == 3  # 60 ms messages by default
    assert Settings.from_env(base | {"MEDIA_FRAMES_PER_MESSAGE": "1"}).media_frames_per_message == 1
    for bad in ("0", "6", "two"):
        with pytest.raises(SettingsError, match="MEDIA_FRAMES_PER_MESSAGE"):
            Settings.from_env(base | {"MEDIA_FRAMES_PER_MESSAGE": bad})


async def test_three_frames_a_message_keep_marks_clear_and_heard(aiohttp_server, settings, caplog):
    caplog.set_level(logging.INFO)
    s = phone_settings(settings, media_frames_per_message=3)
    server, p, app = await serve(aiohttp_server, s, llm=ScriptedLLM(text=LONG), tts=ScriptedTTS(ms_per_char=25))
    report = await simulate_call(url(server), [OPEN, ADDRESS], auth_token=TOKEN, barge_in_after_ms=1500)
    t2 = report.turns[1]
    assert report.clears >= 1 and t2.clears_ms, report.events
    assert t2.clears_ms[0] - speech_onset_ms(ADDRESS) <= 300, t2.clears_ms
    assert report.stale_audio_bytes == 0
    heard = p.llm.seen[1][1]["content"]
    assert heard and LONG.startswith(heard) and len(heard) < len(LONG) / 2
    assert len([m for m in report.marks_echoed if m.startswith("t1s")]) >= heard.count("This is sentence")
    await eventually(lambda: any(r.getMessage() == "call ended" for r in caplog.records))
    ended = [r for r in caplog.records if r.getMessage() == "call ended"][-1]
    frames_out = ended.fields["frames_out"]  # type: ignore[attr-defined]
    messages = len(report.bot_media_s)
    assert frames_out > 2 * messages  # most messages carry 3 frames (fewer only before a mark)
