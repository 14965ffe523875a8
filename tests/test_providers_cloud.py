"""The cloud adapters, through the real SDKs, against wire-level fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.conversation import Action, Conversation
from bot.errors import StageError
from bot.providers.base import LLM, STT, TTS
from bot.providers.deepgram import DeepgramSTT, environment_for
from bot.providers.elevenlabs import ElevenLabsTTS
from bot.providers.openai_llm import OpenAILLM
from bot.settings import Settings
from tests.conftest import eventually
from tests.fakes.cloud import (
    FakeBehaviour,
    cloud_app,
    deepgram_app,
    elevenlabs_app,
    openai_app,
    tone_pcm16,
    tone_ulaw,
)

# deepgram-sdk imports websockets' deprecated legacy names at import time.
pytestmark = [pytest.mark.filterwarnings(r"ignore:websockets\.\S+ is deprecated:DeprecationWarning"), pytest.mark.virtual_time]  # virtual_time: tests/virtual_time.py

DG_KEY = "dg-secret-key-0001"
OA_KEY = "sk-secret-key-0002"
EL_KEY = "xi-secret-key-0003"
KEYS = (DG_KEY, OA_KEY, EL_KEY)
TIMEOUT = 0.3  # the budget, where the budget is what a test checks (hangs, stalls, gaps)
GAP = 1.0  # a per-gap budget a reply must meet: roomy enough for a busy machine's first connect
SLACK = 1.0  # a hang ends within the budget plus this, even on a busy machine
ROOMY = 5.0  # the budget everywhere else: a busy machine must not turn a 500 into a timeout
PCM = tone_pcm16(500, 16000)


@dataclass
class Rig:
    """One adapter wired to its fake; ``run()`` drives it to completion."""

    stage: str
    adapter: Any
    state: FakeBehaviour
    run: Callable[[], Any]


async def _collect(agen) -> list:
    return [item async for item in agen]


async def _rig(aiohttp_server, stage: str, timeout: float = ROOMY, **behaviour) -> Rig:
    state = FakeBehaviour(**behaviour)
    if stage == "stt":
        server = await aiohttp_server(deepgram_app(state))
        stt = DeepgramSTT(api_key=DG_KEY, base_url=str(server.make_url("")), timeout=timeout)
        await stt.start()
        return Rig(stage, stt, state, lambda: stt.transcribe(PCM, 16000))
    if stage == "llm":
        server = await aiohttp_server(openai_app(state))
        llm = OpenAILLM(api_key=OA_KEY, base_url=str(server.make_url("/v1")), timeout=timeout)
        await llm.start()
        conv = Conversation(messages=[{"role": "user", "content": "When do you open?"}])
        return Rig(stage, llm, state, lambda: _collect(llm.reply(conv)))
    server = await aiohttp_server(elevenlabs_app(state))
    tts = ElevenLabsTTS(api_key=EL_KEY, base_url=str(server.make_url("")), timeout=timeout)
    await tts.start()
    return Rig(stage, tts, state, lambda: _collect(tts.synthesize("Hello there.", mulaw=True)))


@pytest.fixture
async def rigs():
    made: list[Rig] = []
    yield made
    for r in made:
        await r.adapter.close()


@pytest.fixture
def make(aiohttp_server, rigs):
    async def go(stage: str, **kw) -> Rig:
        r = await _rig(aiohttp_server, stage, **kw)
        rigs.append(r)
        return r

    return go


# ------------------------------------------------------------------ happy paths


async def test_adapters_satisfy_protocols():
    s = Settings()
    assert isinstance(DeepgramSTT.from_settings(s), STT)
    assert isinstance(OpenAILLM.from_settings(s), LLM)
    assert isinstance(ElevenLabsTTS.from_settings(s), TTS)


def test_deepgram_environment_derives_websocket_urls():
    env = environment_for("https://dg.example.com/")
    assert (env.base, env.production, env.agent, env.agent_rest) == (
        "https://dg.example.com",
        "wss://dg.example.com",
        "wss://dg.example.com",
        "https://dg.example.com",
    )
    assert environment_for("http://127.0.0.1:9").production == "ws://127.0.0.1:9"


async def test_deepgram_transcribes_through_the_sdk(make):
    r = await make("stt", transcript="Do you deliver on Sundays?")
    assert await r.run() == "Do you deliver on Sundays?"
    seen = r.state.last
    assert (seen.method, seen.path) == ("POST", "/v1/listen")
    assert seen.query == {"model": "nova-3", "smart_format": "true"}
    assert seen.headers["authorization"] == f"Token {DG_KEY}"
    assert seen.body_len == 44 + len(PCM)  # a WAV header around our PCM


async def test_openai_streams_text_and_sends_history(make):
    r = await make("llm", reply="We open at nine. We close at five.", tokens_per_s=200)
    llm: OpenAILLM = r.adapter
    conv = Conversation(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "When do you open?"},
        ]
    )
    items = await _collect(llm.reply(conv))
    assert len(items) > 1 and all(isinstance(i, str) for i in items)
    assert "".join(items) == "We open at nine. We close at five."
    seen = r.state.last
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {OA_KEY}"
    body = seen.json
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert {t["function"]["name"] for t in body["tools"]} == {"take_message", "get_hours", "transfer_call", "end_call"}
    system = seen.messages[0]
    assert system["role"] == "system" and system["content"].startswith(Settings().system_prompt)
    assert "Maple Street" in system["content"] and "Monday to Friday, 9 AM to 5 PM" in system["content"]
    assert seen.messages[1:] == conv.messages
    assert len(conv.messages) == 3  # the adapter does not append
    assert llm.last_usage and llm.last_usage["completion_tokens"] > 0


@pytest.mark.parametrize(("tool", "args", "kind"), [("transfer_call", '{"purpose": "emergency"}', "transfer"), ("end_call", "{}", "hangup")])
async def test_openai_tool_call_yields_action_after_text(make, tool, args, kind):
    r = await make("llm", script=[{"reply": "One moment.", "tool_calls": [(tool, args)]}, {"reply": " Bye."}])
    items = await r.run()
    assert "".join(i for i in items if isinstance(i, str)) == "One moment. Bye."
    assert isinstance(items[-1], Action) and items[-1].kind == kind and items[-1].reason == "model tool call"
    assert sum(isinstance(i, Action) for i in items) == 1
    # the tool's result went back to the model in a second completion
    assert r.state.requests[1].messages[-1]["role"] == "tool"


async def test_openai_tool_call_without_text_is_not_empty(make):
    r = await make("llm", script=[{"reply": "", "tool_calls": [("transfer_call", '{"purpose": "emergency"}')]}, {"reply": ""}])
    assert [getattr(i, "kind", i) for i in await r.run()] == ["transfer"]


async def test_openai_retries_without_tools_when_server_refuses_them(make):
    r = await make("llm", reject_tools=True, reply="Sure.")
    assert "".join(await r.run()) == "Sure."
    assert [bool(s.json.get("tools")) for s in r.state.requests] == [True, False]
    assert "".join(await r.run()) == "Sure."  # remembered: no second refusal
    assert [bool(s.json.get("tools")) for s in r.state.requests] == [True, False, False]


async def test_openai_without_key_sends_placeholder(aiohttp_server):
    state = FakeBehaviour(reply="Hi.")
    server = await aiohttp_server(openai_app(state))
    llm = OpenAILLM(base_url=str(server.make_url("/v1")), model="llama3.2")
    try:
        assert "".join(await _collect(llm.reply(Conversation(messages=[{"role": "user", "content": "x"}])))) == "Hi."
    finally:
        await llm.close()
    assert state.last.headers["authorization"] == "Bearer not-needed"
    assert state.last.json["model"] == "llama3.2"


async def test_elevenlabs_streams_mulaw(make):
    r = await make("tts", chunk_size=700, chunk_delay_s=0.02)  # paced: aiohttp hands on what has arrived, merged
    chunks = await r.run()
    assert len(chunks) > 1
    assert b"".join(chunks) == tone_ulaw(max(200, 60 * len("Hello there.")))
    seen = r.state.last
    assert seen.path == f"/v1/text-to-speech/{Settings().elevenlabs_voice_id}/stream"
    assert seen.query == {"output_format": "ulaw_8000", "optimize_streaming_latency": "3"}
    assert seen.headers["xi-api-key"] == EL_KEY
    assert seen.json["text"] == "Hello there." and seen.json["model_id"] == "eleven_flash_v2_5"


async def test_elevenlabs_streams_sample_aligned_pcm(make):
    r = await make("tts", chunk_size=333)  # odd chunks on the wire
    tts: ElevenLabsTTS = r.adapter
    chunks = await _collect(tts.synthesize("Hi.", mulaw=False))
    assert all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == tone_pcm16(200, tts.pcm_rate)
    assert r.state.last.query["output_format"] == "pcm_16000"


async def test_budgets_are_per_gap_not_per_reply(make):
    """Each gap is under the budget though the whole reply takes longer than it."""
    llm = await make("llm", reply=" ".join(["word"] * 6), tokens_per_s=4, first_delay_s=0.1, timeout=GAP)  # ~1.5 s in all
    assert "".join(await llm.run()).split() == ["word"] * 6
    tts = await make("tts", chunk_size=400, chunk_delay_s=0.3, timeout=GAP)  # ~5 chunks, ~1.5 s in all
    assert len(await tts.run()) >= 4


async def test_slow_consumer_time_is_not_counted(make):
    r = await make("llm", reply="One two three.", timeout=GAP)
    items = []
    async for item in r.adapter.reply(Conversation(messages=[{"role": "user", "content": "x"}])):
        items.append(item)
        await asyncio.sleep(GAP + 0.1)
    assert "".join(items) == "One two three."


async def test_cloud_app_serves_all_three(aiohttp_server):
    dg, oa, el = FakeBehaviour(), FakeBehaviour(reply="Ok."), FakeBehaviour()
    server = await aiohttp_server(cloud_app(stt=dg, llm=oa, tts=el))
    root = str(server.make_url(""))
    s = Settings(
        deepgram_api_key=DG_KEY,
        openai_api_key=OA_KEY,
        elevenlabs_api_key=EL_KEY,
        deepgram_base_url=root,
        openai_base_url=root + "/v1",
        elevenlabs_base_url=root,
    )
    stt, llm, tts = DeepgramSTT.from_settings(s), OpenAILLM.from_settings(s), ElevenLabsTTS.from_settings(s)
    try:
        assert await stt.transcribe(PCM, 16000) == dg.transcript
        assert "".join(await _collect(llm.reply(Conversation(messages=[{"role": "user", "content": "x"}])))) == "Ok."
        assert b"".join(await _collect(tts.synthesize("Hi.", mulaw=True)))
    finally:
        for a in (stt, llm, tts):
            await a.close()
    assert len(dg.requests) == len(oa.requests) == len(el.requests) == 1


# ------------------------------------------------------------------ failures

COMMON = [
    ("500", "upstream_error", True),
    ("503", "upstream_error", True),
    ("429", "rate_limited", True),
    ("401", "auth", False),
    ("400", "bad_request", False),
    ("hang", "timeout", True),
    ("reset", "upstream_error", True),
    ("garbage", "bad_response", True),
    ("shape", "bad_response", True),
    ("empty", "empty_result", True),
]
STREAMING = [
    ("stall", "timeout", True),
    ("cut", "upstream_error", True),
]
CASES = (
    [("stt", *c) for c in COMMON]
    + [("llm", *c) for c in COMMON + STREAMING + [("error_event", "bad_response", True)]]
    + [("tts", *c) for c in COMMON + STREAMING + [("422", "bad_request", False)]]
)


@pytest.mark.parametrize(("stage", "mode", "code", "retryable"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
async def test_failures_become_stage_errors(make, stage, mode, code, retryable):
    budget = TIMEOUT if code == "timeout" else ROOMY
    r = await make(stage, mode=mode, timeout=budget)
    t0 = time.monotonic()
    with pytest.raises(StageError) as info:
        await r.run()
    elapsed = time.monotonic() - t0
    err = info.value
    assert (err.stage, err.code, err.retryable) == (stage, code, retryable), err
    assert err.provider == r.adapter.name
    assert elapsed < budget + SLACK
    text = f"{err} {err.to_dict()}"
    for secret in (*KEYS, "fake error", "upstream oops", "not audio", "Service page", r.state.transcript):
        assert secret not in text
    assert err.__cause__ is None  # vendor exceptions are not chained onto ours


async def test_tts_pcm_body_that_is_text_is_bad_response(make):
    r = await make("tts", audio=b'{"detail": "oops"}' + b"\0" * 100)
    with pytest.raises(StageError) as info:
        await _collect(r.adapter.synthesize("Hi.", mulaw=False))
    assert info.value.code == "bad_response"


async def test_tts_odd_length_pcm_is_bad_response(make):
    r = await make("tts", audio=b"\1\2\3", chunk_size=1)
    with pytest.raises(StageError) as info:
        await _collect(r.adapter.synthesize("Hi.", mulaw=False))
    assert info.value.code == "bad_response"


async def test_each_request_is_a_fresh_attempt(make):
    """No hidden SDK retries: one request per call, and a recovered fake works again."""
    for stage in ("stt", "llm", "tts"):
        r = await make(stage, mode="503")
        with pytest.raises(StageError):
            await r.run()
        assert len(r.state.requests) == 1
        r.state.mode = "ok"
        assert await r.run()
        assert len(r.state.requests) == 2


# ------------------------------------------------------------------ cancellation


async def _until_seen(state: FakeBehaviour, n: int = 1) -> None:
    await eventually(lambda: len(state.requests) >= n, 2, 0.005)


@pytest.mark.parametrize("stage", ["stt", "llm", "tts"])
async def test_cancel_while_waiting_propagates(make, stage):
    r = await make(stage, mode="hang", timeout=5.0)
    task = asyncio.ensure_future(r.run())
    await _until_seen(r.state)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    r.state.mode = "ok"  # the adapter is still usable afterwards
    assert await r.run()


@pytest.mark.parametrize("stage", ["llm", "tts"])
async def test_cancel_mid_stream_propagates(make, stage):
    r = await make(stage, mode="stall", timeout=5.0)
    got = asyncio.Event()

    async def consume():
        agen = (
            r.adapter.reply(Conversation(messages=[{"role": "user", "content": "x"}]))
            if stage == "llm"
            else r.adapter.synthesize("Hello there.", mulaw=True)
        )
        async for _ in agen:
            got.set()

    task = asyncio.ensure_future(consume())
    async with asyncio.timeout(2):
        await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ------------------------------------------------------------------ pre-warming


async def test_warm_opens_the_connection_the_first_request_reuses(aiohttp_server):
    """warm() sends one HEAD; the real request then rides the same TCP connection
    (the fake records the client port of every request)."""
    from aiohttp import web

    ports: list[tuple[str, int]] = []

    @web.middleware
    async def peer(request, handler):
        ports.append((request.method, request.transport.get_extra_info("peername")[1]))
        return await handler(request)

    dg, oa, el = FakeBehaviour(), FakeBehaviour(reply="Ok."), FakeBehaviour()
    app = cloud_app(stt=dg, llm=oa, tts=el)
    app.middlewares.append(peer)
    server = await aiohttp_server(app)
    root = str(server.make_url("")).rstrip("/")
    s = Settings(
        deepgram_api_key=DG_KEY, openai_api_key=OA_KEY, elevenlabs_api_key=EL_KEY,
        deepgram_base_url=root, openai_base_url=root + "/v1", elevenlabs_base_url=root,
    )
    from bot.providers.warm import warm_all

    adapters = [DeepgramSTT.from_settings(s), OpenAILLM.from_settings(s), ElevenLabsTTS.from_settings(s)]
    for a in adapters:
        await a.start()
    try:
        await warm_all(adapters)
        heads = [p for m, p in ports if m == "HEAD"]
        assert len(heads) == 3
        await asyncio.sleep(0.3)  # longer than nothing: the pooled connections must stay open
        await adapters[0].transcribe(PCM, 16000)
        await _collect(adapters[1].reply(Conversation(messages=[{"role": "user", "content": "x"}])))
        await _collect(adapters[2].synthesize("Hi.", mulaw=True))
        posts = [p for m, p in ports if m == "POST"]
        assert len(posts) == 3 and set(posts) <= set(heads), ports
        # a second warm() right after use does nothing: the pools are hot
        await warm_all(adapters)
        assert len([m for m, _ in ports if m == "HEAD"]) == 3
    finally:
        for a in adapters:
            await a.close()
