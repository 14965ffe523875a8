"""The cheaper cloud path (issue 13): SSE read from bytes, the lazy stream bound, the
lean httpx client, Deepgram's headers built once, the orchestrator's bound.

Wire formats come from the fakes in tests/fakes/cloud.py (what OpenAI sends), or from
small aiohttp servers that send what real servers also send (SSE comments, CRLF)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest
from aiohttp import web

from bot.conversation import Conversation
from bot.errors import StageError
from bot.orchestrator import Orchestrator, Timings
from bot.providers.deepgram import DeepgramSTT
from bot.providers.http_lean import LeanClient
from bot.providers.openai_llm import OpenAILLM
from bot.providers.openai_wire import sse_data as _sse_data
from bot.providers.warm import http_client
from bot.stall import Stall
from tests.fakes.cloud import FakeBehaviour, deepgram_app, openai_app, tone_pcm16
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

pytestmark = [pytest.mark.filterwarnings(r"ignore:websockets\.\S+ is deprecated:DeprecationWarning"), pytest.mark.virtual_time]  # virtual_time: tests/virtual_time.py

GAP = 0.3  # a bound the tests check; SLACK absorbs a busy machine
SLACK = 1.5


async def _body(aiohttp_server, state: FakeBehaviour) -> bytes:
    """The raw body the OpenAI fake streams for one request (tools, usage and all)."""
    server = await aiohttp_server(openai_app(state))
    async with aiohttp.ClientSession() as s:
        payload = {"model": "m", "stream": True, "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(server.make_url("/v1/chat/completions"), json=payload) as r:
            return await r.read()


async def _events(chunks: list[bytes]) -> list[bytes]:
    async def gen():
        for c in chunks:
            yield c

    return [e async for e in _sse_data(gen())]


# ------------------------------------------------------------------ SSE from bytes


async def test_sse_events_are_the_same_however_the_body_is_cut(aiohttp_server):
    body = await _body(aiohttp_server, FakeBehaviour(reply="We open at nine. Bye.", tool_call="take_message"))
    reference = [block[len(b"data: "):] for block in body.split(b"\n\n") if block]
    assert reference[-1] == b"[DONE]" and len(reference) > 5
    whole = await _events([body])
    bytewise = await _events([body[i : i + 1] for i in range(len(body))])
    odd = await _events([body[i : i + 7] for i in range(0, len(body), 7)])
    crlf = await _events([body.replace(b"\n", b"\r\n")])
    assert whole == bytewise == odd == crlf == reference
    decoded = [json.loads(e) for e in whole[:-1]]
    assert any(d.get("usage") for d in decoded)
    assert any(c["delta"].get("tool_calls") for d in decoded for c in d["choices"])


async def test_sse_comments_event_names_and_multiline_data():
    raw = b": keep-alive\n\nevent: message\nid: 7\ndata: {\"a\":\ndata: 1}\n\nretry: 10\n\ndata: [DONE]"
    assert await _events([raw]) == [b'{"a":\n1}', b"[DONE]"]  # unterminated last event still counts
    assert json.loads((await _events([raw]))[0]) == {"a": 1}


async def test_openai_adapter_reads_a_stream_with_comments_and_crlf(aiohttp_server):
    """An OpenAI-compatible gateway that sends keep-alive comments and CRLF line ends."""
    seen: list[dict] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": PROCESSING\r\n\r\n")
        for tok in ("We open", " at nine."):
            chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": tok}}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\r\n\r\ndata: [DONE]\r\n\r\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    server = await aiohttp_server(app)
    llm = OpenAILLM(api_key="sk-k", base_url=str(server.make_url("/v1")), timeout=5)
    try:
        out = [x async for x in llm.reply(Conversation(messages=[{"role": "user", "content": "hours?"}]))]
    finally:
        await llm.close()
    assert "".join(map(str, out)) == "We open at nine."
    assert llm.last_usage == {"prompt_tokens": 3, "completion_tokens": 4}
    body = seen[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][-1] == {"role": "user", "content": "hours?"} and body["tools"]


async def test_openai_stall_between_chunks_is_a_timeout_naming_the_stream(aiohttp_server):
    state = FakeBehaviour(mode="stall", reply="We are open from nine until five today, and Saturdays.", token_chars=40)  # a clause, then nothing
    server = await aiohttp_server(openai_app(state))
    llm = OpenAILLM(api_key="sk-k", base_url=str(server.make_url("/v1")), timeout=GAP)
    await llm.start()  # its takeover receptionist loads the sentence encoder: not part of the bound measured
    t0 = asyncio.get_running_loop().time()
    got: list = []
    try:
        with pytest.raises(StageError) as info:
            async for x in llm.reply(Conversation(messages=[{"role": "user", "content": "x"}])):
                got.append(x)
    finally:
        await llm.close()
    assert (info.value.code, info.value.retryable) == ("timeout", True)
    assert "stream stalled" in str(info.value) and got == ["We are open from nine until five today,"]
    assert asyncio.get_running_loop().time() - t0 < GAP + SLACK


# ------------------------------------------------------------------ the lazy bound


async def test_stall_bounds_the_wait_for_the_first_item():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stall = Stall(t0 + GAP, GAP)
    with pytest.raises(TimeoutError):
        async with stall:
            await asyncio.sleep(60)
    assert stall.expired() and not stall.started
    assert loop.time() - t0 < GAP + SLACK


async def test_stall_lets_a_slow_but_steady_stream_run_longer_than_the_gap():
    loop = asyncio.get_running_loop()
    stall = Stall(loop.time() + GAP, GAP)
    n = 0
    async with stall:
        while n < 8:  # 8 x GAP/3: well over GAP in all
            await asyncio.sleep(GAP / 3)
            stall.tick()
            n += 1
    assert not stall.expired() and stall.started


async def test_stall_does_not_count_the_consumers_time():
    loop = asyncio.get_running_loop()
    stall = Stall(loop.time() + GAP, GAP)
    async with stall:
        stall.tick()
        stall.hold()
        await asyncio.sleep(GAP * 3)  # the consumer with the item
        stall.resume()
        await asyncio.sleep(GAP / 3)
    assert not stall.expired()


async def test_stall_gap_after_progress_expires():
    loop = asyncio.get_running_loop()
    stall = Stall(loop.time() + 60, GAP)
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        async with stall:
            stall.tick()
            await asyncio.sleep(60)
    assert stall.expired() and stall.started and loop.time() - t0 < GAP + SLACK


async def test_stall_ticks_before_the_start_do_not_extend_the_first_bound():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stall = Stall(t0 + GAP, GAP, tick_starts=False)
    with pytest.raises(TimeoutError):
        async with stall:
            for _ in range(100):  # keep-alives, no content
                await asyncio.sleep(GAP / 4)
                stall.tick()
    assert stall.expired() and not stall.started
    assert loop.time() - t0 < GAP + SLACK


async def test_a_timeout_that_is_not_the_stalls_passes_through():
    loop = asyncio.get_running_loop()
    stall = Stall(loop.time() + 60, 60)
    with pytest.raises(TimeoutError):
        async with stall:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(60)
    assert not stall.expired()


# ------------------------------------------------------------------ the lean client


def _hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "query": dict(request.query), "key": request.headers.get("x-key")})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/hello?from=moved")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/moved", moved)
    app.router.add_post("/hello", hello)
    return app


async def test_lean_client_sends_builds_and_caches_urls(aiohttp_server):
    server = await aiohttp_server(_hello_app())
    base = str(server.make_url("/hello"))
    http = http_client(5)
    assert isinstance(http, LeanClient)
    try:
        for _ in range(2):  # second time from the URL cache
            r = await http.get(base, params=[("model", "nova-3"), ("smart_format", "true")], headers={"x-key": "k"})
            assert r.status_code == 200
            assert r.json() == {"path": "/hello", "query": {"model": "nova-3", "smart_format": "true"}, "key": "k"}
        r = await http.get(base, params={"other": 1})
        assert r.json()["query"] == {"other": "1"}
        async with http.stream("GET", base) as s:  # streaming: the body is read by the caller
            assert json.loads(b"".join([c async for c in s.aiter_bytes()]))["path"] == "/hello"
    finally:
        await http.aclose()
    with pytest.raises(RuntimeError):
        await http.get(base)


async def test_lean_client_follows_a_redirect_only_when_asked(aiohttp_server):
    server = await aiohttp_server(_hello_app())
    url = str(server.make_url("/moved"))
    follow, stay = http_client(5, follow_redirects=True), http_client(5)
    try:
        r = await follow.post(url, json={"a": 1})
        assert r.status_code == 200 and r.json()["query"] == {"from": "moved"}
        assert (await stay.post(url, json={"a": 1})).status_code == 307
    finally:
        await follow.aclose()
        await stay.aclose()


async def test_lean_client_takes_httpx_path_for_httpx_auth(aiohttp_server):
    server = await aiohttp_server(_hello_app())
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def ahook(request: httpx.Request) -> None:
        hook(request)

    http = http_client(5, event_hooks={"request": [ahook]})
    try:
        assert (await http.get(str(server.make_url("/hello")))).status_code == 200
    finally:
        await http.aclose()
    assert seen == ["/hello"]


# ------------------------------------------------------------------ Deepgram headers


async def test_deepgram_headers_are_built_once_and_still_authenticate(aiohttp_server, monkeypatch):
    state = FakeBehaviour(transcript="Hello there.")
    server = await aiohttp_server(deepgram_app(state))
    stt = DeepgramSTT(api_key="dg-key-1", base_url=str(server.make_url("")), timeout=5)
    await stt.start()
    from importlib import metadata

    lookups: list[str] = []
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: lookups.append(name) or real(name))
    try:
        for _ in range(3):
            assert await stt.transcribe(tone_pcm16(300), 16000) == "Hello there."
    finally:
        await stt.close()
    assert lookups == []  # the SDK would read its version from package metadata per request
    assert [r.headers["authorization"] for r in state.requests] == ["Token dg-key-1"] * 3


# ------------------------------------------------------------------ the orchestrator's bound


async def _turn(orch: Orchestrator, slow_consumer: float = 0.0) -> list:
    conv = Conversation()
    conv.add_user("hi")
    out = []
    async for ev in orch.respond(conv, mulaw=True, timings=Timings()):
        out.append(ev)
        if slow_consumer:
            await asyncio.sleep(slow_consumer)
    return out


async def test_orchestrator_bounds_a_stalled_stream_even_if_the_adapter_does_not():
    orch = Orchestrator(ScriptedSTT(), ScriptedLLM(hang=True), ScriptedTTS(), stt_timeout=GAP, llm_timeout=GAP, tts_timeout=GAP)
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(StageError) as info:
        await _turn(orch)
    assert (info.value.stage, info.value.code) == ("llm", "timeout")
    assert asyncio.get_running_loop().time() - t0 < GAP + SLACK


async def test_orchestrator_does_not_count_the_callers_time_against_tts():
    tts = ScriptedTTS(chunk_ms=20)  # many chunks; the consumer sleeps longer than the budget on each
    orch = Orchestrator(ScriptedSTT(), ScriptedLLM(text="Fine."), tts, stt_timeout=GAP, llm_timeout=GAP, tts_timeout=GAP)
    events = await _turn(orch, slow_consumer=GAP * 1.5)
    assert len(events) >= 3 and tts.texts == ["Fine."]

