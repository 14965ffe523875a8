"""run_call through the transport seam with an in-memory transport (no socket): the
whole engine (session, paced writer, scripted providers) behind ~30 lines of adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.carriers.twilio.control import StreamEndControl
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.prompts import PromptBank
from bot.run_call import CallEngine, run_call
from bot.transport import AudioIn, Inbound, MarkIn, StopIn
from media import frames, mulaw, wav
from tests.conftest import caller_wav
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS, tone_pcm
from tests.fakes.store import MemoryStore

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)


class MemoryTransport:
    """Plays the carrier: marks are echoed as soon as the writer reaches them."""

    kind = "memory"
    frames_per_message = 1

    def __init__(self) -> None:
        self.call_sid, self.stream_sid, self.caller = "CA" + "1" * 32, "MZ" + "1" * 32, "+15550001234"
        self.queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.audio = 0
        self.marks: list[str] = []
        self.clears = 0
        self.closed = asyncio.Event()
        self.marked = asyncio.Condition()

    async def inbound(self) -> AsyncIterator[Inbound]:
        while True:
            ev = await self.queue.get()
            yield ev
            if isinstance(ev, StopIn):
                return

    async def send_audio(self, frame: bytes) -> None:
        self.audio += len(frame)

    async def send_mark(self, name: str) -> None:
        self.marks.append(name)
        self.queue.put_nowait(MarkIn(name))
        async with self.marked:
            self.marked.notify_all()

    async def send_clear(self) -> None:
        self.clears += 1

    async def close(self) -> None:
        self.closed.set()
        self.queue.put_nowait(StopIn())  # like a socket: closing ends the inbound side

    def summary(self) -> dict:
        return {}

    async def wait_mark(self, name: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            async with self.marked:
                await self.marked.wait_for(lambda: name in self.marks)


def engine(settings, calls: dict, control=None) -> CallEngine:
    stt, llm, tts = ScriptedSTT(), ScriptedLLM(), ScriptedTTS()
    prompts = PromptBank()
    for name in ("greeting", "fallback", "reprompt", "goodbye"):
        prompts.audio[name] = mulaw.encode(tone_pcm(300))
    orch = Orchestrator(stt, llm, tts, stt_timeout=1, llm_timeout=1, tts_timeout=1)
    return CallEngine(settings=settings.with_(end_silence_ms=500), orchestrator=orch, prompts=prompts,
                      control=control or StreamEndControl(), metrics=Metrics(), calls=calls, store=MemoryStore())


async def test_a_call_through_a_memory_transport(settings):
    t, calls = MemoryTransport(), {}
    e = engine(settings, calls)
    events: list[tuple[str, dict]] = []
    call = asyncio.create_task(run_call(t, e, observer=lambda kind, data: events.append((kind, data))))
    await t.wait_mark("greeting")
    assert [x.call_sid for x in calls.values()] == [t.call_sid] and e.metrics.live_calls._value.get() == 1
    speech = mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16) + mulaw.silence(8000)
    for frame in frames.split(speech):
        t.queue.put_nowait(AudioIn(frame))
        await asyncio.sleep(0.001)
    await t.wait_mark("t1s1", timeout=30)
    t.queue.put_nowait(StopIn())
    session = await asyncio.wait_for(call, 10)
    assert t.closed.is_set() and not calls and e.metrics.live_calls._value.get() == 0
    assert session.state.value == "ended" and session.turn_no == 1
    assert ("caller", {"turn": 1, "text": "what time do you open tomorrow"}) in events
    assert [d["text"] for k, d in events if k == "bot"] == ["We open at nine.", "We close at five."]
    assert any(k == "latency" and d["turn"] == 1 for k, d in events)
    assert t.audio > 0 and t.audio % 160 == 0


async def test_end_now_says_goodbye_hangs_up_and_closes_the_transport(settings):
    t, calls = MemoryTransport(), {}
    control = StreamEndControl()
    e = engine(settings, calls, control)
    call = asyncio.create_task(run_call(t, e))
    await t.wait_mark("greeting")
    next(iter(calls.values())).end_now("goodbye")
    session = await asyncio.wait_for(call, 10)
    assert "end-goodbye" in t.marks and t.closed.is_set() and not calls
    assert "<Hangup" in (await control.after_stream(t.call_sid) or "")  # hung up, not transferred
    assert session.state.value == "ended"


async def test_a_carrier_that_ends_the_call_on_lost_media_is_recorded_like_the_media_watchdog(settings):
    """A carrier's own media timeout (SIP: no RTP) ends the inbound side with StopIn(no_media):
    the log, the metrics and the record say silence/no_media, as the session's own watchdog
    would, never that the caller hung up; a plain StopIn is still the caller's hang-up."""
    from bot.store.calls import ended_by

    for stop, want in ((StopIn(no_media=True), ("silence", "no_media")), (StopIn(), ("caller", None))):
        t, calls = MemoryTransport(), {}
        e = engine(settings.with_(media_timeout_s=600), calls)  # the session's own watchdog stays out of it
        recorded: list[str] = []

        async def record_end(transport, session, failed, recorded=recorded) -> None:
            recorded.append(ended_by(session, failed=failed))

        e = replace(e, record_end=record_end)
        call = asyncio.create_task(run_call(t, e))
        await t.wait_mark("greeting")
        t.queue.put_nowait(stop)
        session = await asyncio.wait_for(call, 10)
        assert (session.ended_by or "caller", session.end_reason) == want, stop
        assert recorded == [want[0]]
        assert e.metrics.calls_ended.labels(want[0], "abandoned")._value.get() == 1


async def test_a_broken_observer_does_not_end_the_call(settings):
    t, calls = MemoryTransport(), {}

    def broken(kind: str, data: dict) -> None:
        raise RuntimeError("observer bug")

    call = asyncio.create_task(run_call(t, engine(settings, calls), observer=broken))
    await t.wait_mark("greeting")
    assert [x.call_sid for x in calls.values()] == [t.call_sid]
    t.queue.put_nowait(StopIn())
    session = await asyncio.wait_for(call, 10)
    assert session is not None and session.state.value == "ended"


class BuggyFinalizeSTT:
    """A live STT whose ``finalize`` answers with the final, then raises (a bug in a
    helper the session spawned): the call must go on with the turn."""

    name = "buggy"

    def __init__(self, text: str) -> None:
        self.text = text
        self.error = None
        self.events_q: asyncio.Queue = asyncio.Queue()
        self.sent = 0
        self.closed = False

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def open(self, *, call_sid: str = ""):
        return self

    def send(self, mulaw: bytes, *, voiced: bool | None = None) -> None:
        self.sent += len(mulaw)

    async def events(self):
        while not self.closed:
            yield await self.events_q.get()

    async def finalize(self) -> None:
        from bot.providers.stt_stream import Final

        self.events_q.put_nowait(Final(self.text, speech_final=False, from_finalize=True))
        raise RuntimeError("finalize bug")

    async def aclose(self) -> None:
        self.closed = True


async def test_a_bug_in_a_spawned_helper_is_counted_and_the_call_goes_on(settings):
    import dataclasses

    t, calls = MemoryTransport(), {}
    live = BuggyFinalizeSTT("what time do you open tomorrow")
    e = dataclasses.replace(engine(settings, calls), live_stt=live)
    call = asyncio.create_task(run_call(t, e))
    await t.wait_mark("greeting")
    speech = mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16) + mulaw.silence(8000)
    for frame in frames.split(speech):
        t.queue.put_nowait(AudioIn(frame))
        await asyncio.sleep(0.001)
    await t.wait_mark("t1s1", timeout=30)  # the turn ran on the live final
    t.queue.put_nowait(StopIn())
    session = await asyncio.wait_for(call, 10)
    assert session.tasks.errors == 1 and session.turn_no == 1 and session.state.value == "ended"
    assert live.sent > 0 and live.closed
    assert e.metrics.stage_errors.labels("call", "bug")._value.get() == 1
