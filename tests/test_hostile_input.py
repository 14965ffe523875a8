"""Hostile input, property-based and by hand: the Media Streams protocol object, the
websocket handler under floods, the WAV reader, uploads, content types, signatures.
No 5xx, no crashed call, no exception but the documented ones, no unbounded memory."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import tracemalloc

import aiohttp
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.carriers.twilio import media_stream as tp
from media import wav
from tests.conftest import caller_wav, live_call_sids, stream_token

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

SID = "MZ" + "a" * 32
CALL = "CA" + "b" * 32
FUZZ = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def start_msg(sid: str = SID, token: str = "") -> str:
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {
        "accountSid": "AC" + "c" * 32, "callSid": CALL, "streamSid": sid, "tracks": ["inbound"],
        "customParameters": {"token": token} if token else {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def media_msg(payload: bytes = b"\xff" * 160, seq: int = 2, sid: str = SID) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": sid,
                       "media": {"track": "inbound", "chunk": str(seq - 1), "timestamp": str(20 * seq), "payload": base64.b64encode(payload).decode()}})


def started() -> tp.MediaStreamProtocol:
    p = tp.MediaStreamProtocol()
    assert isinstance(p.receive(start_msg()), tp.Start)
    return p


# ------------------------------------------------------------------ the protocol object

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_never_raises(text):
    p = started()
    before = sum(p.stats.values())
    ev = p.receive(text)
    assert ev is None or isinstance(ev, (tp.Media, tp.Mark, tp.Dtmf, tp.Stop, tp.Connected, tp.Start))
    if ev is None:  # dropped: counted under a reason
        assert sum(p.stats.values()) == before + 1, p.stats
    after = p.receive(media_msg(seq=10))
    if isinstance(ev, tp.Stop):  # the text was a stop: the stream is over, later media is dropped
        assert p.state is tp.State.STOPPED and after is None and p.stats.get("after_stop") == 1
    else:  # anything else leaves the stream as it was: the next frame is audio
        assert p.state is tp.State.STARTED and isinstance(after, tp.Media)


def test_a_stop_ends_the_stream_and_later_media_is_dropped_and_counted():
    p = started()
    stop = {"event": "stop", "sequenceNumber": "5", "streamSid": SID, "stop": {"accountSid": "AC" + "c" * 32, "callSid": CALL}}
    assert isinstance(p.receive(json.dumps(stop)), tp.Stop) and p.state is tp.State.STOPPED
    assert p.receive(media_msg(seq=10)) is None and p.stats == {"after_stop": 1}


@FUZZ
@given(json_values)
def test_random_json_never_raises_and_is_counted(value):
    p = started()
    before = sum(p.stats.values())
    ev = p.receive(json.dumps(value))
    assert ev is None
    assert sum(p.stats.values()) == before + 1


FIELDS = ["event", "sequenceNumber", "streamSid", "media", "payload", "track", "timestamp", "chunk", "mark", "name", "dtmf", "digit"]


@FUZZ
@given(st.sampled_from(["media", "mark", "dtmf", "stop", "start"]), st.sampled_from(FIELDS), json_values)
def test_mutated_valid_messages_never_raise(kind, key, value):
    p = started()
    base = {
        "media": json.loads(media_msg()),
        "mark": {"event": "mark", "sequenceNumber": "3", "streamSid": SID, "mark": {"name": "t1s0"}},
        "dtmf": {"event": "dtmf", "sequenceNumber": "4", "streamSid": SID, "dtmf": {"track": "inbound_track", "digit": "5"}},
        "stop": {"event": "stop", "sequenceNumber": "5", "streamSid": SID, "stop": {"accountSid": "AC" + "c" * 32, "callSid": CALL}},
        "start": json.loads(start_msg()),
    }[kind]
    for target in (base, *[v for v in base.values() if isinstance(v, dict)]):
        if key in target:
            target[key] = value
    ev = p.receive(json.dumps(base))
    if ev is None:  # refused: never silently, always under a reason (a sequence gap alone is not one)
        assert sum(n for reason, n in p.stats.items() if reason != "gaps") == 1, (kind, key, value, p.stats)
    if isinstance(ev, tp.Media):
        assert len(ev.payload) <= tp.MAX_PAYLOAD
    if isinstance(ev, tp.Dtmf):
        assert ev.digit in tp.DIGITS


def test_by_hand_every_kind_of_bad_message_is_counted_not_fatal():
    p = tp.MediaStreamProtocol(max_message_bytes=4096)
    assert p.receive(media_msg()) is None  # media before start
    p.receive(start_msg())
    bad = [
        "not json", "[1,2]", '{"event": 7}', '{"event":"bogus"}',
        media_msg(sid="MZ" + "f" * 32),  # another stream
        json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "@@@not base64"}}),
        json.dumps({"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(b"x" * 9000).decode()}}),
        "x" * 5000,  # oversized
        json.dumps({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": "Z"}}),
        json.dumps({"event": "mark", "streamSid": SID, "mark": {}}),
        start_msg(),  # a second start
        "[" * 3000,  # deep nesting
    ]
    for b in bad:
        assert p.receive(b) is None
    p.receive_binary()
    assert isinstance(p.receive(media_msg(seq=20)), tp.Media)
    for reason in ("not_json", "not_object", "unknown_event", "wrong_stream", "bad_base64", "oversized", "bad_digit", "binary"):
        assert p.stats.get(reason), (reason, p.stats)
    assert p.stats.get("before_start") == 1


def test_sequence_gaps_are_counted_not_fatal():
    p = started()
    for seq in (2, 3, 7, 6, 8):
        assert isinstance(p.receive(media_msg(seq=seq)), tp.Media)
    assert p.stats.get("gaps", 0) >= 3


# ------------------------------------------------------------------ the WAV reader

REAL = caller_wav("open_tomorrow_joe.wav")


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_give_wav_error_or_audio(data):
    for blob in (data, b"RIFF" + data, b"RIFF\x00\x00\x00\x00WAVE" + data):
        try:
            a = wav.read(blob)
        except wav.WavError as e:
            assert str(e)
        else:
            assert len(a.pcm16) % 2 == 0


def test_every_truncation_of_a_real_wav():
    for cut in list(range(0, 120)) + list(range(120, len(REAL), 997)):
        try:
            a = wav.read(REAL[:cut])
        except wav.WavError:
            continue
        assert len(a.pcm16) <= 2 * len(REAL)


def _wav(fmt_tag=1, channels=1, rate=8000, bits=16, data=b"\0\0" * 100, data_size=None, fmt_size=16, extra=b""):
    brate = (rate * channels * bits // 8) & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, brate, (channels * bits // 8) & 0xFFFF, bits) + extra
    fmt = fmt[:fmt_size] if fmt_size < len(fmt) else fmt
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("blob", "says"),
    [
        (_wav(data_size=0xFFFFFFFF), None),  # a lying, huge data size: clamped, no huge allocation
        (_wav(channels=0), "channel"),
        (_wav(channels=6), "channel"),
        (_wav(fmt_tag=3, bits=32), "format 3"),  # float
        (_wav(bits=24), "24-bit"),
        (_wav(fmt_tag=2, bits=4), "format 2"),  # ADPCM
        (_wav(rate=0), "sample rate"),
        (_wav(rate=4_000_000_000), "sample rate"),
        (_wav(fmt_size=8), "truncated"),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "not a WAV"),
        (b"RIFF\x04\x00\x00\x00WAVEdata\x04\x00\x00\x00\x00\x00\x00\x00", "before its fmt"),
    ],
)
def test_lying_and_unsupported_headers(blob, says):
    tracemalloc.start()
    try:
        if says is None:
            a = wav.read(blob)
            assert len(a.pcm16) == 200
        else:
            with pytest.raises(wav.WavError, match=says):
                wav.read(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # nothing sized by the declared (lying) lengths


def test_odd_sized_chunks_are_skipped():
    junk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"  # odd size + pad byte
    blob = _wav()
    blob = blob[:12] + junk + blob[12:]
    assert len(wav.read(blob).pcm16) == 200


# ------------------------------------------------------------------ HTTP: uploads, types, signatures


async def test_upload_limits_types_and_broken_multipart(aiohttp_client, settings):
    from bot.providers.registry import Providers
    from handlers.app import create_app
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    s = settings.with_(max_upload_bytes=100_000)
    client = await aiohttp_client(create_app(s, providers=Providers(ScriptedSTT(), ScriptedLLM(), ScriptedTTS()), embedded_prompt_fallback=False))

    async def check(resp, status):
        body = await resp.text()
        assert resp.status == status, body
        assert "Traceback" not in body and json.loads(body)["error"]["message"]

    big = b"RIFF" + b"\0" * 200_000
    await check(await client.post("/v1/orchestrate", data=big, headers={"Content-Type": "audio/wav"}), 413)

    async def chunks():
        for _ in range(30):
            yield b"\0" * 10_000

    await check(await client.post("/v1/orchestrate", data=chunks(), headers={"Content-Type": "audio/wav"}), 413)
    await check(await client.post("/v1/orchestrate", data=b"hello", headers={"Content-Type": "text/plain"}), 415)
    await check(await client.post("/v1/orchestrate", data=b"{}", headers={"Content-Type": "application/json"}), 415)
    await check(await client.post("/v1/orchestrate", data=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}), 400)
    await check(await client.post("/v1/orchestrate", data=b"RIFFxxxxWAVEjunk", headers={"Content-Type": "audio/wav"}), 400)
    # and after all that, a good request still works
    r = await client.post("/v1/orchestrate", data=caller_wav("yes_joe.wav"), headers={"Content-Type": "audio/wav"})
    assert r.status == 200


async def test_forged_and_missing_signatures_are_refused_before_any_work(aiohttp_server, settings):
    from bot.providers.registry import Providers
    from handlers.app import create_app
    from handlers.state import CALLS
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    p = Providers(ScriptedSTT(), ScriptedLLM(), ScriptedTTS())
    app = create_app(settings.with_(twilio_validate=True, twilio_auth_token="real-token"), providers=p, embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    form = {"CallSid": CALL, "From": "+15551234567"}
    async with aiohttp.ClientSession() as http:
        for path in ("/twilio/voice", "/twilio/status", "/twilio/after"):
            for headers in ({}, {"X-Twilio-Signature": "Zm9yZ2Vk"}):
                r = await http.post(base + path, data=form, headers=headers)
                assert r.status == 403, (path, headers, r.status)
        for headers in ({}, {"X-Twilio-Signature": "Zm9yZ2Vk"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(base.replace("http", "ws") + "/twilio/media", headers=headers)
            assert info.value.status == 403
    assert p.stt.calls == [] and not app[CALLS]


async def test_flood_of_garbage_mid_call_does_not_end_it_and_memory_stays_bounded(aiohttp_server, settings):
    """10,000 garbage messages and oversized ones mid-call: the call stays up, the
    bot still answers, the handler's memory does not grow with the flood."""
    from bot.providers.registry import Providers
    from handlers.app import create_app
    from media import frames, mulaw
    from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    p = Providers(ScriptedSTT(), ScriptedLLM(), ScriptedTTS())
    app = create_app(settings.with_(twilio_validate=False, end_silence_ms=400), providers=p, embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    ws_url = str(server.make_url("/twilio/media")).replace("http", "ws")
    speech = mulaw.encode(wav.read(caller_wav("open_tomorrow_joe.wav")).pcm16) + mulaw.silence(8000)
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send_str(start_msg(token=stream_token(app, CALL)))
        tracemalloc.start()
        junk = ["not json", "{}", '{"event":"media"}', media_msg(sid="MZ" + "f" * 32), json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "!!"}})]
        for i in range(10_000):
            await ws.send_str(junk[i % len(junk)])
        for _ in range(20):
            await ws.send_str("x" * 200_000)
        await asyncio.sleep(0.3)
        flood_mem, _ = tracemalloc.get_traced_memory()
        for i in range(10_000):
            await ws.send_str(junk[i % len(junk)])
        await asyncio.sleep(0.3)
        after_mem, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert after_mem - flood_mem < 2_000_000, (flood_mem, after_mem)
        assert CALL in live_call_sids(app)
        # a real turn after the flood is still answered
        got_reply = False
        seq = 100
        for fr in frames.split(speech):
            await ws.send_str(media_msg(fr, seq=seq))
            seq += 1
            await asyncio.sleep(0.002)
        async with asyncio.timeout(10):
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("event") == "mark" and data["mark"]["name"].startswith("t1s"):
                    got_reply = True
                    break
        assert got_reply
    assert p.stt.calls, "the turn after the flood reached STT"
    body = await (await aiohttp.ClientSession().get(str(server.make_url("/metrics")))).text()
    assert 'phonebot_protocol_errors_total{reason="not_json"}' in body
