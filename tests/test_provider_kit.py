"""The provider kit (bot/providers/kit.py): one error mapping, one set of stream bounds, one
test of what counts as output; and the failover chains that read their members with it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from deepgram.core.api_error import ApiError as DeepgramApiError
from elevenlabs.core.api_error import ApiError as ElevenApiError

from bot.conversation import Conversation
from bot.errors import StageError
from bot.orchestrator import Orchestrator, Timings
from bot.providers import registry
from bot.providers.failover import FailoverLLM, FailoverSTT, FailoverTTS
from bot.providers.kit import Bounds, Edge, is_output
from bot.settings import Settings, SettingsError
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS


def chain_kw(**kw):
    return {"share": 0.6, "threshold": 3, "cooldown_s": 30.0} | kw


def _conv() -> Conversation:
    return Conversation(messages=[{"role": "user", "content": "when do you open"}])


class BlankLLM:
    """An LLM member that streams only whitespace: it has said nothing."""

    def __init__(self, name: str, items: list[str]) -> None:
        self.name, self.items, self.calls = name, items, 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def reply(self, conversation: Conversation):
        self.calls += 1
        for item in self.items:
            yield item
            await asyncio.sleep(0)


class EmptyChunkTTS:
    """A TTS member that yields ``b""``: only (``audio_first`` False), or after some audio
    forever, as a keep-alive that is not audio."""

    name = "hollow"
    pcm_rate = 16000

    def __init__(self, *, audio_first: bool, forever: bool) -> None:
        self.audio_first, self.forever = audio_first, forever

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def synthesize(self, text: str, *, mulaw: bool):
        if self.audio_first:
            yield b"\xff" * 800
        for _ in range(10**9 if self.forever else 20):
            yield b""
            await asyncio.sleep(0.005)


# ------------------------------------------------------------------ what counts as output


@pytest.mark.parametrize(("item", "said"), [
    (b"", False), (bytearray(), False), ("", False), (" ", False), ("\n\t  ", False), (None, False),
    (b"\x00", True), ("a", True), (" we", True), (0, True), (object(), True),
])
def test_is_output(item, said):
    assert is_output(item) is said


# ------------------------------------------------------------------ failover: empty is not output


@pytest.mark.parametrize("items", [[" "], ["", " ", "\n"], ["  ", "\t"]])
async def test_an_llm_that_streams_only_whitespace_fails_over(items):
    blank = BlankLLM("blank", items)
    chain = FailoverLLM([blank, ScriptedLLM(name="two", text="We open at nine.")], 1.0, **chain_kw())
    out = [x async for x in chain.reply(_conv())]
    assert "".join(out) == "We open at nine."
    assert chain.last_used == "two" and blank.calls == 1
    assert chain.health()[0]["consecutive_failures"] == 1


async def test_a_tts_that_yields_only_empty_chunks_fails_over():
    chain = FailoverTTS([EmptyChunkTTS(audio_first=False, forever=False), ScriptedTTS(name="two")], 1.0, **chain_kw())
    audio = b"".join([c async for c in chain.synthesize("Hello there.", mulaw=True)])
    assert len(audio) == 8 * 10 * len("Hello there.") and chain.last_used == "two"
    assert chain.health()[0]["consecutive_failures"] == 1


async def test_empty_chunks_mid_stream_are_not_progress():
    """Audio, then ``b""`` every 5 ms for ever: the chain's between-chunks bound must
    still fire (an empty chunk kept it alive before)."""
    chain = FailoverTTS([EmptyChunkTTS(audio_first=True, forever=True)], 0.3, **chain_kw())
    got = []
    with pytest.raises(StageError) as info:
        async with asyncio.timeout(5.0):  # a safety net only; the chain's 0.3 s must end it
            async for chunk in chain.synthesize("Hello there.", mulaw=True):
                got.append(chunk)
    assert (info.value.stage, info.value.code, info.value.provider) == ("tts", "timeout", "hollow")
    assert [c for c in got if c] == [b"\xff" * 800]
    assert chain.health()[0]["consecutive_failures"] == 1


@pytest.mark.parametrize("text", ["", "   ", "\n"])
async def test_a_blank_transcript_is_no_speech_not_an_answer(text):
    """A member that returns blank text has recognised nothing: the chain says so
    (``empty_result``), as for an adapter that raised it, and does not ask the next
    engine to hear the same silence."""
    second = ScriptedSTT(name="two")
    chain = FailoverSTT([ScriptedSTT(name="one", text=text), second], 1.0, **chain_kw())
    with pytest.raises(StageError) as info:
        await chain.transcribe(b"\0\0" * 800, 8000)
    assert (info.value.stage, info.value.code) == ("stt", "empty_result")
    assert second.calls == [] and chain.health()[0]["consecutive_failures"] == 0


async def test_a_single_stt_call_goes_through_the_same_loop():
    chain = FailoverSTT([ScriptedSTT(name="one", text="  hello  ")], 1.0, **chain_kw())
    assert await chain.transcribe(b"\0\0", 8000) == "  hello  "  # adapters strip; the chain passes text on
    assert chain.last_used == "one"


# ------------------------------------------------------------------ the edge's error mapping


def _edge(**kw) -> Edge:
    return Edge("tts", "acme", timeout=2.0, **kw)


@pytest.mark.parametrize(("exc", "code", "retryable"), [
    (httpx.ReadTimeout("slow"), "timeout", True),
    (TimeoutError(), "timeout", True),
    (httpx.ConnectError("refused"), "upstream_error", True),
    (ConnectionResetError(), "upstream_error", True),
    (ElevenApiError(status_code=429, body=None), "rate_limited", True),
    (ElevenApiError(status_code=401, body=None), "auth", False),
    (ElevenApiError(status_code=403, body=None), "auth", False),
    (ElevenApiError(status_code=422, body=None), "bad_request", False),
    (ElevenApiError(status_code=503, body=None), "upstream_error", True),
    (ElevenApiError(status_code=200, body=None), "bad_response", True),
    (ElevenApiError(status_code=None, body=None), "upstream_error", True),
    (DeepgramApiError(status_code=504, body=None), "timeout", True),
    (ValueError("not json"), "bad_response", True),
    (KeyError("results"), "bad_response", True),
    (RuntimeError("boom"), "upstream_error", True),
])
def test_every_failure_maps_to_one_stage_error(exc, code, retryable):
    err = _edge().map(exc)
    assert (err.stage, err.code, err.retryable, err.provider) == ("tts", code, retryable, "acme")
    assert "boom" not in err.message and "not json" not in err.message  # no vendor text leaks


def test_a_vendor_classifier_goes_first_and_stage_errors_pass_through():
    mine = StageError("tts", "auth", "HTTP 401", provider="acme")
    edge = _edge(classify=lambda e: ("bad_response", "vendor says so") if isinstance(e, RuntimeError) else None)
    assert edge.map(RuntimeError()).code == "bad_response"
    assert edge.map(httpx.ReadTimeout("x")).code == "timeout"
    assert edge.map(mine) is mine


def test_an_engine_edge_calls_every_failure_its_own():
    """An embedded engine's ValueError is its bug, not an unreadable vendor reply."""
    err = Edge("stt", "whisper", engine="whisper").map(ValueError("x"))
    assert (err.code, err.message, err.retryable) == ("upstream_error", "whisper failed (ValueError)", True)


def test_guard_lets_only_stage_errors_out():
    edge = _edge()
    with pytest.raises(StageError) as info, edge.guard():
        raise OSError("reset")
    assert info.value.code == "upstream_error"
    with pytest.raises(asyncio.CancelledError), edge.guard():
        raise asyncio.CancelledError


def test_require_text():
    edge = Edge("stt", "acme", timeout=1.0)
    assert edge.require_text("  hi ") == "hi"
    for blank, code in (("", "empty_result"), (" \n", "empty_result"), (None, "bad_response"), (3, "bad_response")):
        with pytest.raises(StageError) as info:
            edge.require_text(blank)
        assert info.value.code == code


# ------------------------------------------------------------------ the bounds


async def _trickle(gaps: list[float], item: bytes = b"x"):
    for gap in gaps:
        await asyncio.sleep(gap)
        yield item


async def test_bounded_names_what_did_not_come():
    with pytest.raises(StageError) as info:
        await _edge().bounded(asyncio.sleep(5), within=0.05, what="no audio")
    assert info.value.code == "timeout" and "no audio within 0.05 s" in info.value.message


@pytest.mark.parametrize(("gaps", "what"), [([0.3], "no audio"), ([0.0, 0.3], "stalled")])
async def test_first_and_gap_bounds(gaps, what):
    read = _edge().read(Bounds.from_now(0.1, 0.1, first_what="no audio", gap_what="stalled"))
    with pytest.raises(StageError) as info:
        async for _ in read.over(_trickle(gaps)):
            pass
    assert info.value.code == "timeout" and info.value.message.startswith(what)


async def test_empty_items_do_not_restart_the_gap_but_the_consumers_time_is_free():
    read = _edge().read(Bounds.from_now(0.2, 0.2))
    got = []
    with pytest.raises(StageError):
        async for item in read.over(_trickle([0.0] + [0.05] * 40, b"")):
            got.append(item)
    assert 2 <= len(got) < 40  # b"" every 50 ms did not keep a 200 ms bound alive
    read = _edge().read(Bounds.from_now(0.1, 0.1))
    n = 0
    async for _ in read.over(_trickle([0.0, 0.0, 0.0])):
        await asyncio.sleep(0.15)  # the consumer is slow: not the source's fault
        n += 1
    assert n == 3


async def test_the_total_bound_cuts_the_stream_quietly():
    read = _edge().read(Bounds.from_now(1.0, 1.0, total_s=0.1))
    got = [x async for x in read.over(_trickle([0.03] * 20))]
    assert read.cut and 2 <= len(got) < 20


# ------------------------------------------------------------------ a vendor is a module and a table line


BEEP = registry.Vendor("tests.fakes.beep_tts:BeepTTS", env=("BEEP_API_KEY", "BEEP_PITCH"), needs=("BEEP_API_KEY",))


async def test_a_tts_vendor_is_one_module_and_a_table_line(monkeypatch):
    env = {"TRIAL": "true", "TTS_PROVIDER": "beep,piper"}
    with pytest.raises(SettingsError, match="'beep' is not a provider"):
        Settings.from_env(env)
    monkeypatch.setitem(registry.TABLE, "tts", {**registry.TABLE["tts"], "beep": BEEP})  # the table line
    with pytest.raises(SettingsError, match="TTS_PROVIDER=beep,piper needs BEEP_API_KEY"):
        Settings.from_env(env)
    settings = Settings.from_env(env | {"BEEP_API_KEY": "good-key", "BEEP_PITCH": "880"})
    assert {"BEEP_API_KEY", "BEEP_PITCH"} <= Settings.read_names(env)  # known names, not typos
    assert settings.redacted()["vendor_env"] == {"BEEP_API_KEY": "set", "BEEP_PITCH": "set"}  # keys never shown
    assert "good-key" not in repr(settings) and hash(settings) == hash(Settings.from_env(env | {"BEEP_API_KEY": "good-key", "BEEP_PITCH": "880"}))
    chain = registry.build(settings).tts
    assert isinstance(chain, FailoverTTS) and chain.name == "beep>piper"
    beep = chain.members[0]
    assert (beep.api_key, beep.pitch, beep.timeout) == ("good-key", 880.0, settings.tts_timeout)
    audio = b"".join([c async for c in chain.synthesize("Hello there.", mulaw=True)])
    assert len(audio) == 8 * 20 * len("Hellothere") and chain.last_used == "beep"


async def test_a_table_vendor_fails_as_its_stage():
    from tests.fakes.beep_tts import BeepTTS

    with pytest.raises(StageError) as info:
        _ = [c async for c in BeepTTS(api_key="wrong").synthesize("Hello.", mulaw=True)]
    assert (info.value.stage, info.value.code, info.value.retryable, info.value.provider) == ("tts", "auth", False, "beep")


def test_the_live_stt_is_the_registrys(monkeypatch):
    plain = {"TRIAL": "true", "DEEPGRAM_API_KEY": "k", "STT_PROVIDER": "deepgram,whisper"}
    live = registry.build_live(Settings.from_env(plain))
    assert live is not None and type(live).__name__ == "DeepgramLive"
    assert registry.build_live(Settings.from_env(plain | {"STT_STREAMING": "false"})) is None
    assert registry.build_live(Settings.from_env(plain | {"STT_PROVIDER": "whisper,deepgram"})) is None  # first STT has no stream
    monkeypatch.setitem(registry.LIVE, "whisper", "tests.fakes.deepgram_live:NoSuchClass")
    with pytest.raises(AttributeError):
        registry.build_live(Settings.from_env(plain | {"STT_PROVIDER": "whisper"}))


async def test_one_tts_whose_chunks_turn_empty_mid_reply_times_out_without_a_chain():
    """The same rule where no chain wraps the TTS: the orchestrator's own bound counts only
    audio as progress, so ``b""`` every 5 ms does not hold a turn open."""
    tts = EmptyChunkTTS(audio_first=True, forever=True)
    orch = Orchestrator(ScriptedSTT(), ScriptedLLM(text="Fine."), tts, stt_timeout=0.2, llm_timeout=0.2, tts_timeout=0.2)
    got = []
    with pytest.raises(StageError) as info:
        async with asyncio.timeout(5.0):  # a safety net only
            async for ev in orch.respond(_conv(), mulaw=True, timings=Timings()):
                got.append(ev)
    assert (info.value.stage, info.value.code, info.value.provider) == ("tts", "timeout", "hollow")
    assert len(got) == 1  # the one real chunk


async def test_the_block_form_keeps_the_same_bounds():
    """``async with read`` (a hot loop's form): a stall is ``TIMEOUT`` naming the phase, the
    consumer's time between ``hold`` and ``resume`` is free, and ``past_total`` cuts."""
    read = _edge().read(Bounds.from_now(0.1, 0.1, first_what="no first token", gap_what="stalled"))
    with pytest.raises(StageError) as info:
        async with read:
            async for _ in _trickle([0.3]):
                read.tick()
    assert info.value.code == "timeout" and info.value.message.startswith("no first token")
    read = _edge().read(Bounds.from_now(0.1, 0.1, total_s=0.25))
    n = 0
    async with read:
        async for _ in _trickle([0.0] * 50):
            read.tick()
            read.hold()
            await asyncio.sleep(0.15)  # the consumer: longer than the gap, not counted
            read.resume()
            n += 1
            if read.past_total():
                break
    assert read.cut and n == 2
