"""The dialogue inside whole simulated calls: a caller who hangs up mid-form leaves an
incomplete message; a speculative turn never writes (its "yes" is dropped when the caller
goes on: "yes ... no, wrong number"); the session's outcome for the call record."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.providers.receptionist import Receptionist
from media import wav
from tests.conftest import eventually, trimmed_speech
from tests.fakes.scripted import ScriptedTTS
from tests.test_calls import TOKEN, phone_settings, serve, url

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)


def clip(name: str) -> bytes:
    """A caller file's speech, trimmed, with 300 ms of silence either side (the words the
    STT returns are scripted; only the audio's length matters here)."""
    silence = b"\0\0" * (8 * 300)
    return wav.write_pcm16(silence + trimmed_speech(name) + silence, 8000)


UTTERANCE = clip("open_tomorrow_joe.wav")  # about 2 s: a "long" turn


@dataclass
class LengthSTT:
    """Transcripts by how much audio came: short audio (under ``cut_s``) is ``short``;
    longer audio gets the next of ``long`` in order. A speculative partial of a turn that
    starts with a short word is short; every whole utterance here is long."""

    long: list[str]
    short: str = "yes"
    cut_s: float = 1.0
    name: str = "length-stt"
    calls: list[tuple[float, str]] = field(default_factory=list)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        seconds = len(pcm16) / 2 / rate
        text = self.short if seconds < self.cut_s else (self.long.pop(0) if len(self.long) > 1 else self.long[0])
        self.calls.append((seconds, text))
        return text


async def saved(app, at_least: int = 1, wait_s: float = 10.0) -> list:
    """The messages in the app's store, oldest first; waits (bounded) for ``at_least``:
    an incomplete message is written as the stream ends, after the caller's last frame."""
    import asyncio

    from handlers.storage import STORE

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        rows = list(reversed(await app[STORE].messages()))
        if len(rows) >= at_least or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def test_hang_up_after_name_and_number_leaves_an_incomplete_message(aiohttp_server, settings):
    s = phone_settings(settings, early_turn_ms=0, llm_timeout=2.0)
    stt = LengthSTT(long=["I'd like to leave a message about my parking permit",
                          "My name is Ann Lee and my number is five five five, one two three, four five six seven"])
    server, p, app = await serve(aiohttp_server, s, stt=stt, llm=Receptionist.from_settings(s), tts=ScriptedTTS(ms_per_char=3))
    report = await simulate_call(url(server), [UTTERANCE] * 2, auth_token=TOKEN, max_wait_s=10, quiet_s=0.5, gap_s=0.2)
    assert len(report.turns) == 2 and not report.hung_up_by_bot
    (m,) = await saved(app)  # saved when the stream ended
    assert (m.call_sid, m.name, m.callback_number) == (report.call_sid, "Ann Lee", "5551234567")
    assert m.status == "incomplete" and "parking permit" in m.about


def _yes_pause_then(rest: str, pause_ms: int) -> bytes:
    """One caller turn: "yes", a pause, then more words (a long utterance)."""
    silence = b"\0\0" * (8 * 300)
    yes, more = trimmed_speech("yes_joe.wav"), trimmed_speech(rest)
    return wav.write_pcm16(silence + yes + b"\0\0" * (8 * pause_ms) + more + silence, 8000)


async def test_speculative_yes_never_saves_the_rejected_number(aiohttp_server, settings):
    # early silence 300 ms, end of turn at 1200 ms: the pause after "yes" starts a
    # speculative turn whose "yes" would confirm the form; the caller goes on.
    s = phone_settings(settings, early_turn_ms=300, end_silence_ms=1200, llm_timeout=3.0)
    stt = LengthSTT(long=["I'd like to leave a message about my parking permit",
                          "My name is Ann Lee and my number is five five five, one two three, four five six seven",
                          "yes... no, wrong number"])
    server, p, app = await serve(aiohttp_server, s, stt=stt, llm=Receptionist.from_settings(s), tts=ScriptedTTS(ms_per_char=3))
    turn3 = _yes_pause_then("open_tomorrow_joe.wav", 600)
    report = await simulate_call(url(server), [UTTERANCE, UTTERANCE, turn3], auth_token=TOKEN, max_wait_s=12, quiet_s=0.5, gap_s=0.2)
    assert len(report.turns) == 3
    assert ("yes" in [t for _, t in stt.calls]), stt.calls  # the speculative turn did hear only "yes"
    rows = await saved(app)
    assert all(r.callback_number != "5551234567" for r in rows), rows  # the rejected number was never committed
    (m,) = rows  # what is left at hang-up: the name, no number yet
    assert m.status == "incomplete" and m.name == "Ann Lee" and m.callback_number == ""


async def test_confirmed_message_is_saved_once_and_sets_the_outcome(aiohttp_server, settings, caplog):
    import logging

    caplog.set_level(logging.INFO)
    s = phone_settings(settings, early_turn_ms=300, end_silence_ms=700, llm_timeout=3.0)
    stt = LengthSTT(long=["I'd like to leave a message about my parking permit",
                          "My name is Ann Lee and my number is five five five, one two three, four five six seven",
                          "yes that's right"])
    server, p, app = await serve(aiohttp_server, s, stt=stt, llm=Receptionist.from_settings(s), tts=ScriptedTTS(ms_per_char=3))
    sessions = []
    from handlers.state import CALLS

    async def grab():
        await eventually(lambda: app[CALLS], 20, 0.01)
        sessions.extend(app[CALLS].values())

    import asyncio

    watcher = asyncio.create_task(grab())
    report = await simulate_call(url(server), [UTTERANCE] * 3, auth_token=TOKEN, max_wait_s=12, quiet_s=0.5, gap_s=0.2)
    await watcher
    assert len(report.turns) == 3
    (m,) = await saved(app)
    assert (m.name, m.callback_number, m.status) == ("Ann Lee", "5551234567", "new")
    assert sessions and sessions[0].outcome == "message" and sessions[0].actions.messages_saved == 1
    # one "message saved" line: ids only, never the message's content
    (line,) = [r for r in caplog.records if r.getMessage() == "message saved"]
    assert set(line.fields) == {"call_sid", "message_id", "uid", "urgent"} and line.fields["message_id"] == m.id
    assert line.fields["uid"] == m.uid and len(m.uid) == 36  # the global identity, made at the first detail
