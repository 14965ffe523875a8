"""Issue 21 item 1: a keypad flood and a long read-back cannot eat the machine.

The DTMF entry is bounded in the turn controller; every sentence sent to a TTS is
bounded, and so is a reply's text; a piper job nobody waits for stops at its next
piece. Memory is measured by ``python -m bench.attacks`` (the DTMF row), not here.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bot.conversation import Conversation
from bot.orchestrator import Orchestrator, SentenceSplitter, Timings
from bot.providers.piper import PiperTTS
from bot.providers.registry import Providers
from bot.speech_bounds import MAX_REPLY_CHARS, MAX_SENTENCE_CHARS, ReplyBudget, bounded
from bot.turns.controller import MAX_DTMF_DIGITS, TurnController, TurnOptions
from bot.turns.decisions import StartTurn
from handlers.app import create_app
from media.frames import FRAME_MS
from tests.conftest import eventually, without_front_desk
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.test_attacks import echo_until_closed, media_json, open_stream, params_of, sid, webhook
from tests.test_calls import phone_settings

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

SPOKEN = "zero one two three four five six seven eight nine".split()


def read_back(digits: str) -> str:
    """What the receptionist would say for a callback number of ``digits`` (one sentence)."""
    return "I have your number as " + " ".join(SPOKEN[int(c)] for c in digits) + ". Is that right?"


def listening() -> TurnController:
    c = TurnController(TurnOptions())
    c.phase = c.history[-1] = c.phase.LISTENING
    return c


def test_a_thousand_digits_make_one_bounded_entry():
    c = listening()
    out = []
    for i in range(1000):
        out += c.on_dtmf(str(i % 10), i * 0.02)
    assert out == []
    t = 1000 * 0.02
    while not out:  # the entry is flushed 1.5 s after its last accepted digit, not after the flood
        t += FRAME_MS / 1000
        out += c.on_frame(b"\xff" * 160, False, t)
    turns = [d for d in out if isinstance(d, StartTurn)]
    assert [d.text for d in turns] == ["DTMF " + "0123456789" * (MAX_DTMF_DIGITS // 10)]
    assert c.dtmf_dropped == 1000 - MAX_DTMF_DIGITS


def test_hash_ends_an_entry_and_the_next_one_is_bounded_again():
    c = listening()
    for d in "12345#":
        out = c.on_dtmf(d, 0.0)
    assert [x.text for x in out if isinstance(x, StartTurn)] == ["DTMF 12345"]


@pytest.mark.parametrize("text", [
    read_back("5" * 1000),
    "x" * 5000,  # one "word" longer than any sentence
    ("A, " * 3000),
    "Hello there. " + "word " * 2000,
])
def test_bounded_pieces_keep_every_word_and_respect_the_limit(text):
    pieces = bounded(text)
    assert all(0 < len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert "".join(text.split()) == "".join("".join(pieces).split())  # nothing lost, nothing added


@pytest.mark.parametrize("digits", [16, 40, 1000])
def test_a_digit_run_longer_than_any_phone_number_is_never_spoken(digits):
    """Whoever wrote it (an LLM reading back what was keyed in): no TTS gets more than 15
    digits in a row; a real number (15 digits or fewer) is said as written."""
    pieces = bounded(f"I have {'4' * digits} as your number, and 555 867 5309 too.")
    assert "".join(pieces).count("4") == 0 and "a long number" in pieces[0]
    assert "555 867 5309" in " ".join(pieces)
    assert bounded("+447700900123456 works") == ["+447700900123456 works"]


def test_splitter_never_holds_or_emits_an_unbounded_sentence():
    s = SentenceSplitter(first_clause=True)
    out = []
    for w in read_back("7" * 1000).split(" "):
        out += s.feed(w + " ")
        assert len(s._buf) <= MAX_SENTENCE_CHARS + 10  # the buffer is said as it grows
    out += s.flush()
    assert out and all(len(p) <= MAX_SENTENCE_CHARS for p in out)
    assert " ".join(out).count("seven") == 1000


def test_reply_budget_cuts_at_a_word():
    b = ReplyBudget(20)
    assert b.take("one two three") == "one two three"
    assert b.take("four five six seven") == "four"
    assert b.take("eight") == "" and b.cut


async def test_a_long_reply_reaches_the_tts_in_bounded_sentences_and_is_cut():
    tts = ScriptedTTS(ms_per_char=0)
    llm = ScriptedLLM(text=read_back("3" * 1000) + " " + "and more " * 500)
    o = Orchestrator(ScriptedSTT(), llm, tts, stt_timeout=1, llm_timeout=5, tts_timeout=5)
    events = [e async for e in o.respond(Conversation(messages=[{"role": "user", "content": "hi"}]), mulaw=True, timings=Timings())]
    assert events
    assert all(len(t) <= MAX_SENTENCE_CHARS for t in tts.texts)
    assert MAX_REPLY_CHARS - MAX_SENTENCE_CHARS <= sum(len(t) for t in tts.texts) <= MAX_REPLY_CHARS


class StepVoice:
    """A piper voice stand-in that counts the pieces it was asked for (real piper
    is driven by tests/test_embedded.py; this checks the stepping)."""

    class config:
        sample_rate = 8000

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def synthesize(self, text: str):
        self.pieces.append(text)

        class Chunk:
            audio_int16_bytes = b"\x10\x00" * 800 * len(text)  # 0.1 s a character

        yield Chunk()


async def test_a_piper_job_nobody_waits_for_stops_at_the_next_piece():
    from concurrent.futures import ThreadPoolExecutor

    tts = PiperTTS()
    tts._voice, tts._pool, tts.pcm_rate = StepVoice(), ThreadPoolExecutor(max_workers=1), 8000
    try:
        gen = tts.synthesize(read_back("9" * 1000), mulaw=True)
        first = await gen.__anext__()
        assert first
        await gen.aclose()  # the caller timed out or barged in
        await asyncio.get_running_loop().run_in_executor(tts._pool, lambda: None)  # the thread is free
        assert len(tts._voice.pieces) <= 3  # not the ~30 pieces of the whole text
        assert all(len(p) <= MAX_SENTENCE_CHARS for p in tts._voice.pieces)
        got = [c async for c in tts.synthesize("Next caller.", mulaw=True)]  # the next job runs at once
        assert got and tts._voice.pieces[-1] == "Next caller."
    finally:
        await tts.close()


async def test_dtmf_flood_in_a_call_reaches_the_llm_bounded_and_another_call_is_answered(aiohttp_server, settings, tmp_path):
    llm, tts = ScriptedLLM(text=read_back("1" * 15)), ScriptedTTS(ms_per_char=1)
    app = create_app(phone_settings(without_front_desk(settings, tmp_path)), providers=Providers(ScriptedSTT(), llm, tts), embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        flood_sid, flood_stream = sid("CA", 21), sid("MZ", 21)
        ws = await open_stream(http, server, flood_sid, params_of(await webhook(http, server, flood_sid)), flood_stream)
        for i in range(1000):
            await ws.send_str(json.dumps({"event": "dtmf", "streamSid": flood_stream, "sequenceNumber": str(i + 2),
                                          "dtmf": {"track": "inbound_track", "digit": str(i % 10)}}))
        echo = asyncio.create_task(echo_until_closed(ws, flood_stream, timeout=30))
        for i in range(150):  # the caller's line is quiet; the controller's timers count its frames
            await ws.send_str(media_json(flood_stream, b"\xff" * 160, 1100 + i))
        await eventually(lambda: any("DTMF" in str(m) for req in llm.seen for m in req))
        asked = [m["content"] for req in llm.seen for m in req if "DTMF" in str(m.get("content"))]
        assert asked and all(len(a.split("DTMF ", 1)[1]) <= MAX_DTMF_DIGITS for a in asked)
        other = sid("CA", 22)  # another caller meanwhile: answered as usual
        ws2 = await open_stream(http, server, other, params_of(await webhook(http, server, other)), sid("MZ", 22))
        msg = await ws2.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data)["event"] in ("media", "mark")
        await ws2.close()
        await ws.send_str(json.dumps({"event": "stop", "streamSid": flood_stream, "sequenceNumber": "2000", "stop": {}}))
        await ws.close()
        echo.cancel()
    assert all(len(t) <= MAX_SENTENCE_CHARS for t in tts.texts)
