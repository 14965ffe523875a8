"""Stored transcripts (STORE_TRANSCRIPTS): a real call's lines in order with the call record,
nothing stored when off, the retention sweep on a scripted clock, call search by number and
outcome, and the schema step over a database made by the first version."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.providers.receptionist import Receptionist
from bot.providers.registry import Providers
from bot.settings import Settings
from bot.store import NewMessage, SqlStore
from bot.store import schema as s
from bot.store.api import TranscriptLine, Transfer, TurnRecord
from bot.store.sql import engine_url
from bot.store.transcripts import TranscriptSweeper
from handlers.app import create_app
from handlers.storage import STORE
from tests.conftest import caller_path
from tests.fakes.scripted import ScriptedSTT, ScriptedTTS

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

DAY = 86400.0
WORDS = [  # what each utterance "says": the receptionist takes a message, then transfers
    "I'd like to leave a message",
    "my name is Sarah Johnson",
    "555 213 4467",
    "the kitchen tap in flat 4 keeps dripping",
    "yes",
    "can you put me through to someone",
]


@dataclass
class ListSTT(ScriptedSTT):
    """Says the next of ``texts`` for each caller turn."""

    texts: list[str] = field(default_factory=list)

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        self.calls.append((len(pcm16), rate))
        return self.texts.pop(0) if self.texts else "okay"


WAVS = ["leave_message_joe.wav", "open_tomorrow_joe.wav", "name_number_joe.wav", "address_joe.wav", "yes_joe.wav", "real_person_joe.wav"]


async def _call(aiohttp_server, tmp_path, *, store_transcripts: bool, words=WORDS, wavs=WAVS):
    from bot.carriers.twilio.simulator import simulate_call

    st = Settings(data_dir=tmp_path, twilio_validate=False, trial=True, stt_timeout=2, llm_timeout=2, tts_timeout=2,
                  end_silence_ms=500, early_turn_ms=0, store_transcripts=store_transcripts, transfer_number="+15550009999")
    app = create_app(st, providers=Providers(stt=ListSTT(texts=list(words)), llm=Receptionist.from_settings(st), tts=ScriptedTTS()),
                     embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    report = await simulate_call(str(server.make_url("")), [caller_path(n) for n in wavs], from_number="+15551230001")
    store = app[STORE]
    for _ in range(200):
        rec = await store.call(report.call_sid)
        if rec is not None and rec.ended_at:
            return rec, store
        await asyncio.sleep(0.05)
    raise AssertionError("the call record did not end")


async def test_a_call_stores_what_each_side_said_turn_by_turn(aiohttp_server, tmp_path):
    rec, store = await _call(aiohttp_server, tmp_path, store_transcripts=True)
    lines = rec.transcript
    assert lines[0].speaker == "bot" and lines[0].prompt == "greeting" and lines[0].turn == 0 and "How can I help" in lines[0].text
    caller = [ln for ln in lines if ln.speaker == "caller"]
    assert [ln.text for ln in caller] == WORDS, "\n".join(f"{ln.speaker}: {ln.text}" for ln in lines)  # every turn, in order
    assert [ln.turn for ln in caller] == list(range(1, len(WORDS) + 1))
    for n in range(1, len(WORDS) + 1):  # each turn: the caller, then the bot's reply
        said = [ln.speaker for ln in lines if ln.turn == n and ln.prompt is None]
        assert said == ["caller", "bot"], (n, said)
    reply = {ln.turn: ln.text for ln in lines if ln.speaker == "bot" and ln.prompt is None}
    assert "May I have your name" in reply[1] and "What is the message about" in reply[3] and "passed your message on" in reply[5] and "put you through" in reply[6]
    assert [ln.at for ln in lines] == sorted(ln.at for ln in lines)
    assert rec.outcome == "transferred" and rec.transfer == Transfer("front_desk", "+1********99")
    (msg,) = await store.messages_of_call(rec.call_sid)
    assert msg.name == "Sarah Johnson" and msg.callback_number == "5552134467"
    assert len(rec.turns) == len(WORDS) and all(t.latency_ms is not None for t in rec.turns)


async def test_nothing_is_stored_unless_opted_in(aiohttp_server, tmp_path):
    rec, store = await _call(aiohttp_server, tmp_path, store_transcripts=False, words=WORDS[-1:], wavs=WAVS[-1:])
    assert rec.transcript == () and len(rec.turns) == 1
    assert rec.transfer is not None  # where the call went is not a transcript: always kept
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(s.transcript_lines))).scalar() == 0


async def _ended(store, sid: str, caller: str, at: float, outcome: str, lines: list[str]) -> None:
    await store.call_started(call_sid=sid, stream_sid="MZ" + sid, caller=caller, started_at=at)
    said = [TranscriptLine(i // 2 + 1, at + i, "caller" if i % 2 == 0 else "bot", t) for i, t in enumerate(lines)]
    await store.call_ended(call_sid=sid, ended_at=at + 60, outcome=outcome, ended_by="caller",
                           turns=[TurnRecord(1, at, 640.0, "ok")], transcript=said)


async def test_retention_sweep_deletes_old_transcripts_on_a_scripted_clock(db_url, tmp_path):
    store = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    now = 1_800_000_000.0
    try:
        await _ended(store, "CAold", "+15550000001", now - 31 * DAY, "answered", ["hello", "hi there"])
        await _ended(store, "CAedge", "+15550000002", now - 29.9 * DAY, "answered", ["still kept", "yes"])
        await _ended(store, "CAnew", "+15550000003", now - 3600, "message", ["new one", "noted"])
        # a long call across the line: its whole transcript goes with its start, not half of it
        await _ended(store, "CAlong", "+15550000004", now - 30 * DAY - 600, "answered", [f"line {i}" for i in range(2000)])
        clock = [now]
        sweeper = TranscriptSweeper(store, 30, clock=lambda: clock[0])
        assert await sweeper.sweep() == 2 + 2000
        assert (await store.call("CAold")).transcript == () and (await store.call("CAlong")).transcript == ()
        assert [ln.text for ln in (await store.call("CAedge")).transcript] == ["still kept", "yes"]
        assert (await store.call("CAold")).turns  # the call record itself stays
        clock[0] += 0.2 * DAY  # a few hours later the edge call is past 30 days too
        assert await sweeper.sweep() == 2
        assert (await store.call("CAedge")).transcript == () and len((await store.call("CAnew")).transcript) == 2
        assert await sweeper.sweep() == 0
    finally:
        await store.close()


async def test_search_by_number_in_any_format_and_by_outcome(db_url, tmp_path):
    store = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    now = 1_800_000_000.0
    try:
        await _ended(store, "CA1", "+15558675309", now, "message", [])
        await _ended(store, "CA2", "+442079460123", now + 1, "answered", [])
        await _ended(store, "CA3", "sip:+15551112222@trunk.example.com", now + 2, "abandoned", [])
        await _ended(store, "CA4", "anonymous", now + 3, "message", [])
        await _ended(store, "CA6", "+1 (555) 300-4000", now - 1, "answered", [])  # a carrier that formats its caller IDs
        await store.save_message(NewMessage(call_sid="CA4", caller="anonymous", name="Bo", callback_number="555 444 1234", about="x"))
        await store.call_started(call_sid="CA5", stream_sid="MZ5", caller="+15558675309", started_at=now + 4)  # live

        async def sids(**kw) -> list[str]:
            return [c.call_sid for c in await store.find_calls(**kw)]

        assert await sids(number="(555) 867-5309") == ["CA5", "CA1"]
        assert await sids(number="867 5309", outcome="message") == ["CA1"]
        assert await sids(number="+44 20 7946 0123") == ["CA2"]
        assert await sids(number="1112222") == ["CA3"]
        assert await sids(number="555-444-1234") == ["CA4"]  # the message's callback number
        assert await sids(number="%") == ["CA5", "CA4", "CA3", "CA2", "CA1", "CA6"]  # no digits: no filter, no wildcard
        assert await sids(number="5553004000") == ["CA6"]
        assert await sids(number="999") == []
        assert await sids(outcome="live") == ["CA5"]
        assert await sids(outcome="abandoned") == ["CA3"]
    finally:
        await store.close()


async def test_the_schema_step_upgrades_a_first_version_database(db_url, tmp_path):
    """A database the first version made (calls without the transfer columns) is brought up."""
    engine = create_async_engine(engine_url(db_url, tmp_path))
    old_calls = sa.Table("calls", sa.MetaData(), *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in s.calls.c
                                                   if not c.name.startswith("transfer_")))
    async with engine.begin() as conn:
        for table in (s.messages, old_calls, s.outbox):
            await conn.run_sync(table.create)
        await conn.run_sync(s.schema_version.create)
        await conn.execute(s.schema_version.insert().values(version=1))
        await conn.execute(old_calls.insert().values(call_sid="CAv1", stream_sid="MZ", caller="+15550000001", started_at=1.0, turns=[]))
    await engine.dispose()
    store = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    try:
        assert (await store.call("CAv1")).transfer is None
        await store.call_ended(call_sid="CAv1", ended_at=2.0, outcome="transferred", ended_by="transfer", turns=[],
                               transcript=[TranscriptLine(1, 1.5, "caller", "a person please")], transfer=Transfer("on_call", "+1*****99"))
        rec = await store.call("CAv1")
        assert rec.transfer == Transfer("on_call", "+1*****99") and rec.transcript[0].text == "a person please"
    finally:
        await store.close()


async def test_a_reply_the_caller_barged_in_on_is_stored_as_heard(aiohttp_server, tmp_path):
    from bot.carriers.twilio.simulator import simulate_call
    from tests.fakes.scripted import ScriptedLLM

    long = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 9))
    st = Settings(data_dir=tmp_path, twilio_validate=False, trial=True, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5,
                  end_silence_ms=500, store_transcripts=True)
    app = create_app(st, providers=Providers(stt=ListSTT(texts=["tell me everything", "stop, where are you"]), llm=ScriptedLLM(text=long),
                                             tts=ScriptedTTS(ms_per_char=25)), embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    report = await simulate_call(str(server.make_url("")), [caller_path("open_tomorrow_joe.wav"), caller_path("address_joe.wav")],
                                 barge_in_after_ms=1500)
    store = app[STORE]
    for _ in range(200):
        rec = await store.call(report.call_sid)
        if rec is not None and rec.ended_at:
            break
        await asyncio.sleep(0.05)
    first = [ln for ln in rec.transcript if ln.turn == 1 and ln.prompt is None]
    assert [(ln.speaker, ln.interrupted) for ln in first] == [("caller", False), ("bot", True)]
    heard = first[1].text
    assert heard and long.startswith(heard) and len(heard) < len(long) / 2  # what the caller heard, not the whole reply
    second = [(ln.speaker, ln.text, ln.interrupted) for ln in rec.transcript if ln.turn == 2]
    assert second[0] == ("caller", "stop, where are you", False)
