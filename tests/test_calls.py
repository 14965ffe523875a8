"""Whole phone calls over real websockets: the simulator plays Twilio against the
app (scripted providers), with the shared caller audio."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.conversation import Action
from bot.errors import StageError
from bot.providers.registry import Providers
from handlers.app import create_app
from handlers.state import METRICS
from tests.conftest import caller_path, live_call_sids, stream_token, trimmed_speech, without_front_desk
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

TOKEN = "test-auth-token"
OPEN = caller_path("open_tomorrow_joe.wav")
ADDRESS = caller_path("address_joe.wav")


def phone_settings(settings, **kw):
    base = dict(twilio_validate=True, twilio_auth_token=TOKEN, end_silence_ms=500, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5)
    return settings.with_(**(base | kw))


async def serve(aiohttp_server, settings, **kw):
    p = Providers(stt=kw.get("stt") or ScriptedSTT(), llm=kw.get("llm") or ScriptedLLM(), tts=kw.get("tts") or ScriptedTTS())
    app = create_app(settings, providers=p, embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    return server, p, app


def url(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def test_greeting_then_turn(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN)
    assert not report.rejected
    assert report.greeting_ms is not None and report.greeting_ms < 500
    assert "greeting" in report.marks_echoed
    assert len(report.turns) == 1 and report.turns[0].first_audio_ms is not None
    assert any(m.startswith("t1s") for m in report.marks_echoed)
    # the LLM saw the caller's words as the user turn
    assert p.llm.seen[-1][-1] == {"role": "user", "content": p.stt.text}
    assert p.tts.texts[-2:] == ["We open at nine.", "We close at five."]


def speech_onset_ms(path) -> float:
    """Where speech starts in a caller file, by the same VAD the bot uses."""
    from media import frames, mulaw, vad, wav

    a = wav.read(path.read_bytes())
    v = vad.Vad(2)
    for i, fr in enumerate(frames.split(mulaw.encode(a.pcm16))):
        if v.is_speech_ulaw(fr):
            return i * 20.0
    raise AssertionError("no speech")


LONG = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 9))


async def test_barge_in_clears_fast_and_history_keeps_only_heard(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings), llm=ScriptedLLM(text=LONG), tts=ScriptedTTS(ms_per_char=25))
    report = await simulate_call(url(server), [OPEN, ADDRESS], auth_token=TOKEN, barge_in_after_ms=1500)
    # the second utterance starts 1.5 s into a ~9 s reply: a clear must follow its speech onset
    t2 = report.turns[1]
    assert report.clears >= 1 and t2.clears_ms, report.events
    onset = speech_onset_ms(ADDRESS)
    assert t2.clears_ms[0] - onset <= 300, (t2.clears_ms, onset)
    assert report.stale_audio_bytes == 0
    # the LLM request of turn 2 has, as the assistant turn, only what was heard of turn 1
    history = p.llm.seen[1]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    heard = history[1]["content"]
    assert heard and LONG.startswith(heard) and len(heard) < len(LONG) / 2
    # each heard sentence's mark was echoed by the playback clock, not by the clear
    n_heard = heard.count("This is sentence")
    t1_marks = [m for m in report.marks_echoed if m.startswith("t1s")]
    assert len(t1_marks) >= n_heard


STAGE_FAULTS = {
    "stt": [
        ("stt", dict(error=StageError("stt", "upstream_error", "HTTP 500"))),
        ("stt", dict(error=StageError("stt", "rate_limited", "HTTP 429"))),
        ("stt", dict(hang=True)),
    ],
    "llm": [
        ("llm", dict(error=StageError("llm", "upstream_error", "reset"))),
        ("llm", dict(hang=True)),
        ("llm", dict(error=StageError("llm", "bad_response", "garbage"), error_after_tokens=3)),
    ],
    "tts": [
        ("tts", dict(error=StageError("tts", "upstream_error", "HTTP 500"))),
        ("tts", dict(hang=True)),
        ("tts", dict(empty=True)),
    ],
}


@pytest.mark.parametrize("stage,fault", [f for fs in STAGE_FAULTS.values() for f in fs], ids=lambda x: str(x)[:40])
async def test_stage_failure_plays_fallback_and_next_turn_works(aiohttp_server, settings, stage, fault):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    target = {"stt": p.stt, "llm": p.llm, "tts": p.tts}[stage]
    for k, v in fault.items():
        setattr(target, k, v)
    target.times = 1  # fails once, after start-up rendered the prompts
    report = await simulate_call(url(server), [OPEN, ADDRESS], auth_token=TOKEN, max_wait_s=8)
    assert not report.hung_up_by_bot
    assert "fallback-t1" in report.marks_echoed, report.events
    # fallback heard within the stage budget (0.5 s) + 100 ms of ... the failing stage
    # starting, plus what precedes it; the caller hears something within ~1 s of speech end
    assert report.turns[0].first_audio_ms is not None and report.turns[0].first_audio_ms < 500 + 1000
    # the next turn succeeds
    assert any(m.startswith("t2s") for m in report.marks_echoed)


async def test_repeated_failures_say_goodbye_and_hang_up(aiohttp_server, settings, tmp_path):
    server, p, app = await serve(aiohttp_server, phone_settings(without_front_desk(settings, tmp_path), max_failures=2))
    p.stt.error = StageError("stt", "upstream_error", "down")
    report = await simulate_call(url(server), [OPEN, ADDRESS, OPEN], auth_token=TOKEN, max_wait_s=6)
    assert "fallback-t1" in report.marks_echoed
    assert "end-goodbye" in report.marks_echoed
    assert report.hung_up_by_bot


async def test_forged_or_missing_signature_is_403(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    for token in ("wrong-token", None):
        report = await simulate_call(url(server), [OPEN], auth_token=token)
        assert report.rejected and "403" in report.error
    # a valid webhook but a websocket signed with another token
    import aiohttp
    from twilio.request_validator import RequestValidator

    stream = "ws" + url(server)[4:] + "/twilio/media"
    async with aiohttp.ClientSession() as http:
        bad = RequestValidator("nope").compute_signature(stream, {})
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(stream, headers={"X-Twilio-Signature": bad})
        assert exc.value.status == 403
        good = RequestValidator(TOKEN).compute_signature(stream, {})
        ws = await http.ws_connect(stream, headers={"X-Twilio-Signature": good})
        await ws.close()


async def test_garbage_messages_do_not_end_the_call(aiohttp_server, settings):
    import aiohttp
    from twilio.request_validator import RequestValidator

    server, p, app = await serve(aiohttp_server, phone_settings(settings))
    stream = "ws" + url(server)[4:] + "/twilio/media"
    sig = RequestValidator(TOKEN).compute_signature(stream, {})
    sid, call = "MZ" + "a" * 32, "CA" + "b" * 32
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(stream, headers={"X-Twilio-Signature": sig})
        await ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        def media(stream_sid: str, payload: str) -> str:
            return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})

        start = {"event": "start", "sequenceNumber": "1", "streamSid": sid,
                 "start": {"accountSid": "AC" + "c" * 32, "callSid": call, "streamSid": sid, "tracks": ["inbound"],
                           "customParameters": {"token": stream_token(app, call)},
                           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
        await ws.send_str(media(sid, "AAAA"))  # before start
        await ws.send_str(json.dumps(start))
        for junk in ["not json", "[]", '{"event":"bogus"}', media(sid, "!!!"), media("MZ" + "f" * 32, "AAAA"), "x" * 200_000,
                     json.dumps({"event": "dtmf", "streamSid": sid, "dtmf": {"digit": "99"}})]:
            await ws.send_str(junk)
        await ws.send_bytes(b"\x00\x01")
        # the call is still up: the greeting arrives and a mark is sent
        got = set()
        async with asyncio.timeout(5):
            async for msg in ws:
                got.add(json.loads(msg.data)["event"])
                if "mark" in got:
                    break
        assert {"media", "mark"} <= got
        assert call in live_call_sids(app)
        await ws.close()
    body = await (await aiohttp.ClientSession().get(url(server) + "/metrics")).text()
    assert 'phonebot_protocol_errors_total{reason="not_json"}' in body


async def test_dtmf_zero_transfers(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings, transfer_number="+15550001111"))
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, dtmf={0: "0"}, max_wait_s=6)
    assert "end-transfer" in report.marks_echoed and report.hung_up_by_bot
    # no REST credentials: the <Connect action> answers with <Dial>
    import aiohttp
    from twilio.request_validator import RequestValidator

    params = {"CallSid": report.call_sid}
    sig = RequestValidator(TOKEN).compute_signature(url(server) + "/twilio/after", params)
    async with aiohttp.ClientSession() as http:
        r = await http.post(url(server) + "/twilio/after", data=params, headers={"X-Twilio-Signature": sig})
        assert '<Dial timeout="25">+15550001111</Dial>' in await r.text()  # the default profile rings 25 s


async def test_dialogue_actions_act_on_the_call(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings), llm=ScriptedLLM(text="Goodbye then.", actions=[Action("hangup")]))
    report = await simulate_call(url(server), [OPEN, ADDRESS], auth_token=TOKEN, max_wait_s=6)
    assert report.hung_up_by_bot and len(p.llm.seen) == 1


async def test_silence_reprompts_then_hangs_up(aiohttp_server, settings):
    server, p, app = await serve(aiohttp_server, phone_settings(settings, reprompt_after_s=1.0, max_reprompts=1))
    report = await simulate_call(url(server), [], auth_token=TOKEN, max_wait_s=10, quiet_s=3.5)
    assert "reprompt-1" in report.marks_echoed and "end-goodbye" in report.marks_echoed
    assert report.hung_up_by_bot


def _paused_utterance(pause_ms: int) -> bytes:
    """One caller turn with a pause in the middle: 'open tomorrow' ... 'address'."""
    from media import wav

    a, b = trimmed_speech("open_tomorrow_joe.wav"), trimmed_speech("address_joe.wav")
    silence = b"\0\0" * (8 * 300)
    return wav.write_pcm16(silence + a + b"\0\0" * (8 * pause_ms) + b + silence, 8000)


async def test_speculative_turn_is_dropped_when_the_caller_goes_on(aiohttp_server, settings):
    # early silence 300 ms, end silence 900 ms, a 500 ms pause inside the turn
    s = phone_settings(settings, end_silence_ms=900, early_turn_ms=300)
    server, p, app = await serve(aiohttp_server, s)
    report = await simulate_call(url(server), [_paused_utterance(500)], auth_token=TOKEN)
    assert len(report.turns) == 1 and report.turns[0].first_audio_ms is not None
    # STT ran twice (the dropped speculation, then the whole turn); the LLM saw one user turn
    assert len(p.stt.calls) == 2
    assert p.stt.calls[1][0] > p.stt.calls[0][0] * 1.5
    assert [m["role"] for m in p.llm.seen[-1]] == ["user"]
    assert len(p.llm.seen) <= 2  # at most the cancelled speculation and the real turn
    metrics = app[METRICS]
    assert metrics.speculations.labels("cancelled")._value.get() == 1
    assert metrics.speculations.labels("used")._value.get() == 1
