"""POST /v1/orchestrate and /healthz with scripted providers: the orchestration,
bad input, and per-stage structured errors."""

from __future__ import annotations

import base64
import json
import time

import pytest
from aiohttp import FormData

from bot.conversation import Action
from bot.errors import StageError
from bot.orchestrator import SentenceSplitter
from bot.providers.registry import Providers
from handlers.app import create_app
from media import wav
from tests.conftest import caller_wav
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS, tone_pcm


def make(settings, **kw):
    p = Providers(stt=kw.get("stt") or ScriptedSTT(), llm=kw.get("llm") or ScriptedLLM(), tts=kw.get("tts") or ScriptedTTS())
    return create_app(settings, providers=p, embedded_prompt_fallback=False), p


WAV = wav.write_pcm16(tone_pcm(1000, 16000), 16000)


async def test_wav_in_wav_out(aiohttp_client, settings):
    app, p = make(settings)
    client = await aiohttp_client(app)
    r = await client.post("/v1/orchestrate", data=caller_wav("open_tomorrow_joe.wav"), headers={"Content-Type": "audio/wav"})
    assert r.status == 200, await r.text()
    assert r.content_type == "audio/wav"
    out = wav.read(await r.read())
    assert out.rate == p.tts.pcm_rate
    # scripted TTS speaks 10 ms a character of the two sentences
    assert abs(out.seconds - len("We open at nine.We close at five.") * 0.010) < 0.05
    assert p.tts.texts[-2:] == ["We open at nine.", "We close at five."]  # prompts came first
    assert p.stt.calls == [(2 * 22432, 8000)]  # the 2.804 s mu-law file, decoded to PCM16
    timing = r.headers["Server-Timing"]
    for stage in ("stt", "llm_first_token", "tts_first_byte", "first_audio", "total"):
        assert f"{stage};dur=" in timing


async def test_mulaw_format_and_json(aiohttp_client, settings):
    app, p = make(settings, llm=ScriptedLLM(text="Goodbye now.", actions=[Action("hangup")]))
    client = await aiohttp_client(app)
    r = await client.post("/v1/orchestrate?format=mulaw", data=WAV, headers={"Content-Type": "audio/wav", "Accept": "application/json"})
    assert r.status == 200
    body = await r.json()
    assert body["transcript"] == p.stt.text
    assert body["reply"] == "Goodbye now."
    assert body["actions"] == ["hangup"]
    assert set(body["timings_ms"]) >= {"stt", "llm", "tts", "first_audio"}
    raw = base64.b64decode(body["audio"]["base64"])
    assert raw[20:22] == b"\x07\x00"  # format 7: mu-law
    assert wav.read(raw).rate == 8000


async def test_multipart_upload(aiohttp_client, settings):
    app, _ = make(settings)
    client = await aiohttp_client(app)
    form = FormData()
    form.add_field("audio", WAV, filename="a.wav", content_type="audio/wav")
    r = await client.post("/v1/orchestrate", data=form)
    assert r.status == 200
    form = FormData()
    form.add_field("sound", WAV, filename="a.wav", content_type="audio/wav")
    r = await client.post("/v1/orchestrate", data=form)
    assert r.status == 400 and (await r.json())["error"]["code"] == "missing_audio"


@pytest.mark.parametrize(
    "body,ctype,query,status,code",
    [
        (b"hello", "text/plain", "", 415, "unsupported_media_type"),
        (b"", "audio/wav", "", 400, "empty_body"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "audio/wav", "", 400, "bad_wav"),
        (b"not a wav at all", "audio/wav", "", 400, "bad_wav"),
        (wav.write_pcm16(b"\0\0" * 100, 16000), "audio/wav", "", 400, "too_short"),
        (WAV, "audio/wav", "?format=mp3", 400, "bad_format"),
    ],
)
async def test_bad_input(aiohttp_client, settings, body, ctype, query, status, code):
    app, p = make(settings)
    client = await aiohttp_client(app)
    r = await client.post("/v1/orchestrate" + query, data=body, headers={"Content-Type": ctype})
    assert r.status == status
    err = (await r.json())["error"]
    assert err["code"] == code and err["message"]
    assert "Traceback" not in json.dumps(err)
    assert p.stt.calls == []  # nothing ran


async def test_wav_error_says_what_was_found(aiohttp_client, settings):
    app, _ = make(settings)
    client = await aiohttp_client(app)
    data = bytearray(wav.write_pcm16(tone_pcm(500), 8000))
    data[34:36] = (24).to_bytes(2, "little")  # claim 24-bit
    r = await client.post("/v1/orchestrate", data=bytes(data), headers={"Content-Type": "audio/wav"})
    msg = (await r.json())["error"]["message"]
    assert r.status == 400 and "24-bit" in msg and "accepted" in msg


async def test_too_large(aiohttp_client, settings):
    app, p = make(settings.with_(max_upload_bytes=4096))
    client = await aiohttp_client(app)
    r = await client.post("/v1/orchestrate", data=WAV, headers={"Content-Type": "audio/wav"})
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"

    async def gen():  # chunked, no Content-Length
        for i in range(0, len(WAV), 1000):
            yield WAV[i : i + 1000]

    r = await client.post("/v1/orchestrate", data=gen(), headers={"Content-Type": "audio/wav"})
    assert r.status == 413
    assert p.stt.calls == []


FAILURES = [
    ("stt", lambda: {"stt": ScriptedSTT(error=StageError("stt", "upstream_error", "HTTP 500"))}, 502, "upstream_error"),
    ("stt", lambda: {"stt": ScriptedSTT(hang=True)}, 504, "timeout"),
    ("stt", lambda: {"stt": ScriptedSTT(text="  ")}, 502, "empty_result"),
    ("llm", lambda: {"llm": ScriptedLLM(error=StageError("llm", "rate_limited", "HTTP 429"))}, 502, "rate_limited"),
    ("llm", lambda: {"llm": ScriptedLLM(hang=True)}, 504, "timeout"),
    ("llm", lambda: {"llm": ScriptedLLM(token_delay=5.0)}, 504, "timeout"),  # stalls mid-stream
    ("llm", lambda: {"llm": ScriptedLLM(text="")}, 502, "empty_result"),
    ("tts", lambda: {"tts": ScriptedTTS(error=StageError("tts", "bad_response", "garbage"))}, 502, "bad_response"),
    ("tts", lambda: {"tts": ScriptedTTS(hang=True)}, 504, "timeout"),
    ("tts", lambda: {"tts": ScriptedTTS(empty=True)}, 502, "empty_result"),
]


@pytest.mark.parametrize("stage,kw,status,code", FAILURES)
async def test_stage_failure_is_structured_and_bounded(aiohttp_client, settings, stage, kw, status, code):
    app, _ = make(settings, **kw())
    client = await aiohttp_client(app)
    t = time.perf_counter()
    r = await client.post("/v1/orchestrate", data=WAV, headers={"Content-Type": "audio/wav"})
    elapsed = time.perf_counter() - t
    assert r.status == status
    err = (await r.json())["error"]
    assert err["stage"] == stage and err["code"] == code
    assert set(err) >= {"stage", "code", "message", "retryable"}
    # stage timeouts are 0.5 s in these settings; the stages before it take ~0. Bounded
    # (a hang would run for an hour), with slack for a machine whose cores are busy
    assert elapsed < 0.5 + 2.0


async def test_adapter_bug_still_names_stage(aiohttp_client, settings):
    class Broken(ScriptedTTS):
        async def synthesize(self, text, *, mulaw):
            raise KeyError("oops")
            yield b""

    app, _ = make(settings, tts=Broken())
    client = await aiohttp_client(app)
    r = await client.post("/v1/orchestrate", data=WAV, headers={"Content-Type": "audio/wav"})
    assert r.status == 502
    assert (await r.json())["error"]["stage"] == "tts"


async def test_health_reports_providers_and_degraded(aiohttp_client, settings):
    app, _ = make(settings)
    client = await aiohttp_client(app)
    h = await (await client.get("/healthz")).json()
    assert h["stages"]["stt"] == {"provider": "scripted-stt", "ready": True}
    assert h["prompts"]["fallback"] == "tts:scripted-tts"
    assert h["status"] == "degraded"  # signature validation is off in these settings
    assert "twilio signature validation is OFF" in h["problems"]
    app2, _ = make(settings.with_(twilio_validate=True, twilio_auth_token="t", data_dir=settings.data_dir / "other"), tts=ScriptedTTS(empty=True))
    client2 = await aiohttp_client(app2)
    h2 = await (await client2.get("/healthz")).json()
    assert h2["status"] == "degraded" and "fallback prompt unavailable" in h2["problems"]


async def test_prompt_cache_survives_tts_outage(aiohttp_client, settings):
    app, _ = make(settings)
    await aiohttp_client(app)  # renders and caches
    app2, _ = make(settings, tts=ScriptedTTS(error=StageError("tts", "upstream_error", "down"), name="scripted-tts"))
    client2 = await aiohttp_client(app2)
    h = await (await client2.get("/healthz")).json()
    assert h["prompts"]["fallback"] == "cache"
    assert "fallback prompt unavailable" not in h["problems"]


async def test_llm_runs_ahead_of_tts():
    """The first sentence is spoken while the LLM is still producing the rest."""
    from bot.conversation import Conversation
    from bot.orchestrator import AudioChunk, Orchestrator, Timings

    llm = ScriptedLLM(text="First sentence here. " + "and more words " * 10, token_delay=0.02)
    orch = Orchestrator(ScriptedSTT(), llm, ScriptedTTS(), stt_timeout=1, llm_timeout=1, tts_timeout=1)
    conv = Conversation()
    conv.add_user("hi")
    timings = Timings()
    async for ev in orch.respond(conv, mulaw=True, timings=timings):
        if isinstance(ev, AudioChunk):
            break
    # first audio arrived long before the LLM's ~0.7 s of tokens were done
    assert "llm" not in timings.stages


def test_sentence_splitter():
    s = SentenceSplitter()
    out = []
    for d in ["Hello there. We", " open at 9.30 a.m. tomor", "row! Is that ok? Fine"]:
        out += s.feed(d)
    out += s.flush()
    assert out == ["Hello there.", "We open at 9.30 a.m.", "tomorrow! Is that ok?", "Fine"]


def test_first_clause_goes_to_tts_early():
    text = "Tomorrow, Wednesday, we open at 9 AM and close at 5 PM. Anything else, at all?"
    s = SentenceSplitter(first_clause=True)
    out = [x for i in range(0, len(text), 4) for x in s.feed(text[i : i + 4])] + s.flush()
    assert out == ["Tomorrow, Wednesday,", "we open at 9 AM and close at 5 PM.", "Anything else, at all?"]
    # a first sentence with no comma is left whole; numbers with commas are not clauses
    s = SentenceSplitter(first_clause=True)
    assert s.feed("It costs 5,000 dollars a month. ") == ["It costs 5,000 dollars a month."]
