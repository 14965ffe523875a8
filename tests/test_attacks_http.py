"""Issue 9, the HTTP edge: every attack replayed against the real server code.

Trial mode; /v1 key, concurrency cap and audio length; multipart and body limits;
connection deadlines and cap; the accept-error storm; log forging and amplification;
what third-party loggers and transcripts may log; private data files; hostile WAVs;
the embedded STT's phone-first queue and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from bot import logs, redact
from bot.edge import AcceptErrorThrottle
from bot.files import private_dir, private_file
from bot.lanes import API, PHONE, api_lane
from bot.providers.registry import Providers
from bot.providers.whisper import WhisperSTT, _Worker
from bot.settings import Settings, SettingsError
from bot.shell.server import setup_runner
from handlers.app import create_app
from handlers.state import EDGE
from media import wav
from tests.conftest import eventually
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS, tone_pcm

REPO = Path(__file__).resolve().parents[1]
KEY = "k-" + "x" * 30
TOKEN = "twilio-token"
WAV1S = wav.write_pcm16(tone_pcm(1000, 8000), 8000)


def app_for(settings, stt=None):
    p = Providers(stt=stt or ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    return create_app(settings, providers=p, embedded_prompt_fallback=False)


@contextlib.asynccontextmanager
async def serving(settings, stt=None):
    """The app behind the real runner and connection guard (bot.shell.server), on 127.0.0.1."""
    app = app_for(settings, stt)
    runner = await setup_runner(settings, app)
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield app, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        app[EDGE].close()
        await runner.cleanup()


def hostport(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """Read until the server closes the connection; returns what it sent."""
    out = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            out += chunk
    return out


# ---------------------------------------------------------------- trial mode


def test_trial_mode_binds_localhost_and_skips_checks():
    s = Settings.from_env({"TRIAL": "true"})
    assert s.trial and s.host == "127.0.0.1" and not s.twilio_validate
    assert Settings.from_env({"TRIAL": "true", "HOST": "0.0.0.0"}).host == "0.0.0.0"
    with pytest.raises(SettingsError, match="TRIAL=true"):
        Settings.from_env({})
    # TWILIO_VALIDATE=false keeps working (signatures off) but does not open the API
    s = Settings.from_env({"TWILIO_VALIDATE": "false"})
    assert not s.twilio_validate and not s.trial and s.host == "0.0.0.0" and not s.api_key
    assert Settings.from_env({"API_KEY": " abc-0123456789-xyz ", "TRIAL": "1"}).redacted()["api_key"] == "set"


async def test_health_says_trial_and_api_state(aiohttp_client, tmp_path):
    c = await aiohttp_client(app_for(Settings(data_dir=tmp_path, trial=True, twilio_validate=False)))
    h = await (await c.get("/healthz")).json()
    assert h["trial"] is True and h["api"]["enabled"] and "trial" in h["api"]["auth"]
    assert any("TRIAL MODE" in p for p in h["problems"])
    c2 = await aiohttp_client(app_for(Settings(data_dir=tmp_path / "b", twilio_auth_token=TOKEN, health_detail="public")))
    h2 = await (await c2.get("/healthz")).json()
    assert h2["trial"] is False and h2["api"]["enabled"] is False and "API_KEY" in h2["api"]["auth"]


def test_trial_warning_is_logged_at_start(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = "http://127.0.0.1:9"  # cloud providers nobody answers for: nothing heavy loads
    env = {"PATH": os.environ["PATH"], "TRIAL": "true", "PORT": str(port), "DATA_DIR": str(tmp_path / "d"),
           "DEEPGRAM_API_KEY": "k", "DEEPGRAM_BASE_URL": dead, "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": dead,
           "ELEVENLABS_API_KEY": "k", "ELEVENLABS_BASE_URL": dead, "TTS_TIMEOUT": "0.2", "STT_STREAMING": "false"}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while "bot.server listening" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log_path.read_text()
    assert "WARNING bot TRIAL MODE" in text and "host=127.0.0.1" in text, text[-3000:]


# ---------------------------------------------------------------- /v1 gate


async def test_api_needs_bearer_key(aiohttp_client, tmp_path):
    s = Settings(data_dir=tmp_path, twilio_auth_token=TOKEN, api_key=KEY)
    c = await aiohttp_client(app_for(s))
    hdr = {"Content-Type": "audio/wav"}
    for auth in (None, "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer"):
        h = dict(hdr, **({"Authorization": auth} if auth else {}))
        r = await c.post("/v1/orchestrate", data=WAV1S, headers=h)
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized", auth
        assert r.headers["WWW-Authenticate"] == "Bearer"
    r = await c.post("/v1/orchestrate", data=WAV1S, headers=dict(hdr, Authorization=f"Bearer {KEY}"))
    assert r.status == 200, await r.text()


async def test_api_is_off_without_a_key_outside_trial(aiohttp_client, tmp_path):
    c = await aiohttp_client(app_for(Settings(data_dir=tmp_path, twilio_auth_token=TOKEN)))
    r = await c.post("/v1/orchestrate", data=WAV1S, headers={"Content-Type": "audio/wav", "Authorization": "Bearer anything"})
    assert r.status == 403
    err = (await r.json())["error"]
    assert err["code"] == "api_disabled" and "API_KEY" in err["message"]


class GatedSTT(ScriptedSTT):
    """Holds every transcription until ``release`` is set; ``entered`` counts arrivals."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.arrived = asyncio.Queue()

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        self.arrived.put_nowait(1)
        await self.release.wait()
        return self.text


async def test_concurrency_cap_answers_429_with_retry_after(aiohttp_client, tmp_path):
    stt = GatedSTT()
    s = Settings(data_dir=tmp_path, trial=True, twilio_validate=False, api_max_concurrent=2, stt_timeout=60)
    c = await aiohttp_client(app_for(s, stt))
    post = lambda: c.post("/v1/orchestrate", data=WAV1S, headers={"Content-Type": "audio/wav"})  # noqa: E731
    held = [asyncio.create_task(post()) for _ in range(2)]
    for _ in range(2):  # both are inside the STT: the cap is reached
        await asyncio.wait_for(stt.arrived.get(), 30)
    r = await post()
    assert r.status == 429 and (await r.json())["error"]["code"] == "busy"
    assert int(r.headers["Retry-After"]) >= 1
    stt.release.set()
    assert [x.status for x in await asyncio.gather(*held)] == [200, 200]
    assert (await post()).status == 200  # the slots came back


async def test_longest_audio_is_30_s_checked_from_the_header(aiohttp_client, settings):
    c = await aiohttp_client(app_for(settings))
    long = wav.write_pcm16(b"\0\0" * 8000 * 31, 8000)
    r = await c.post("/v1/orchestrate", data=long, headers={"Content-Type": "audio/wav"})
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_long"
    # the length is read from the header before decoding: an 8-bit PCM file (which
    # decoding would refuse as a format) that claims 40 s is refused for its length
    hdr = bytearray(wav.write_pcm16(b"\0" * 8000 * 40, 8000))
    struct.pack_into("<H", hdr, 34, 8)
    with pytest.raises(wav.WavTooLong):
        wav.read(bytes(hdr), max_seconds=30)
    assert (await c.post("/v1/orchestrate", data=wav.write_pcm16(b"\0\0" * 8000 * 29, 8000), headers={"Content-Type": "audio/wav"})).status == 200


# ---------------------------------------------------------------- multipart and bodies


def tiny_parts(n: int) -> tuple[bytes, str]:
    b = "xBOUNDARYx"
    body = b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n".encode() for i in range(n))
    return body + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


async def test_ten_thousand_tiny_parts_are_refused_at_the_cap(aiohttp_client, settings):
    c = await aiohttp_client(app_for(settings))
    body, ctype = tiny_parts(10_000)
    assert len(body) > 500_000
    r = await c.post("/v1/orchestrate", data=body, headers={"Content-Type": ctype})
    assert r.status == 400 and (await r.json())["error"]["code"] == "too_many_parts"
    assert (await c.get("/livez")).status == 200


async def _send_chunked_junk(url: str, path: str, head: str, first: bytes, total: int) -> tuple[bytes, int]:
    """Stream ``total`` bytes of junk as a chunked body; stop when the server answers."""
    host, port = hostport(url)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode())
    sent = 0
    junk = b"j" * 65536
    try:
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        while sent < total:
            writer.write(b"%x\r\n%s\r\n" % (len(junk), junk))
            sent += len(junk)
            await writer.drain()
            if reader.at_eof() or reader._buffer:  # noqa: SLF001 - the server answered early
                break
    except ConnectionError:
        pass
    reply = await closed_by_server(reader, 30)
    writer.close()
    return reply, sent


async def test_chunked_junk_part_counts_against_the_upload_limit(settings):
    s = settings.with_(max_upload_bytes=256 * 1024)
    async with serving(s) as (_app, url):
        b = "zBz"
        first = f"--{b}\r\nContent-Disposition: form-data; name=\"junk\"\r\n\r\n".encode()
        reply, sent = await _send_chunked_junk(url, "/v1/orchestrate", f"Content-Type: multipart/form-data; boundary={b}\r\n", first, 40 << 20)
        assert reply.startswith(b"HTTP/1.1 413") and b'"too_large"' in reply
        assert sent < 8 << 20  # refused long before 40 MB
        # a chunked raw WAV body too
        reply, sent = await _send_chunked_junk(url, "/v1/orchestrate", "Content-Type: audio/wav\r\n", WAV1S[:44], 40 << 20)
        assert reply.startswith(b"HTTP/1.1 413") and sent < 8 << 20


async def test_slow_upload_gets_408_at_the_body_deadline(settings):
    s = settings.with_(body_timeout_s=1.0)
    async with serving(s) as (_app, url):
        host, port = hostport(url)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/orchestrate HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\nRIFF")
        reply = await closed_by_server(reader, 30)
        assert reply.startswith(b"HTTP/1.1 408") and b"body_timeout" in reply
        # a webhook body that never completes: the middleware's deadline
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nCallSid=")
        reply = await closed_by_server(reader, 30)
        assert reply.startswith(b"HTTP/1.1 408")


# ---------------------------------------------------------------- connections


def signed_webhook(url: str) -> tuple[dict, dict]:
    params = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "2" * 32, "From": "+15551234567", "To": "+15557654321"}
    sig = RequestValidator(TOKEN).compute_signature(url + "/twilio/voice", params)
    return params, {"X-Twilio-Signature": sig}


async def test_silent_and_slow_connections_are_closed_while_real_requests_answer(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="handlers")
    s = Settings(data_dir=tmp_path, twilio_auth_token=TOKEN, header_timeout_s=1.0, keepalive_timeout_s=1.0, body_timeout_s=2.0)
    async with serving(s) as (app, url):
        host, port = hostport(url)
        conns = []
        for i in range(90):
            r, w = await asyncio.open_connection(host, port)
            if i % 3 == 1:  # slow headers
                w.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            elif i % 3 == 2:  # slow body on the webhook
                w.write(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 900\r\n\r\nA=")
            conns.append((r, w))

        stop = asyncio.Event()

        async def trickle() -> None:  # keep the slow ones sending a byte now and then
            while not stop.is_set():
                for i, (_r, w) in enumerate(conns):
                    if i % 3 and not w.is_closing():
                        w.write(b"X")
                await asyncio.sleep(0.3)

        t = asyncio.create_task(trickle())
        async with aiohttp.ClientSession() as http:
            assert (await http.get(url + "/livez")).status == 200
            params, headers = signed_webhook(url)
            r = await http.post(url + "/twilio/voice", data=params, headers=headers)
            assert r.status == 200 and "<Stream" in await r.text()
        closed = await asyncio.gather(*(closed_by_server(r, 30) for r, _w in conns), return_exceptions=True)
        stop.set()
        await t
        assert all(not isinstance(c, Exception) or isinstance(c, ConnectionError) for c in closed), closed[:3]
        # slow bodies: 408 at the middleware's deadline (a reset when unread bytes were pending)
        assert all(isinstance(c, ConnectionError) or c == b"" or c.startswith(b"HTTP/1.1 408") for c in closed[2::3])
        assert len([r for r in caplog.records if r.getMessage() == "request body too slow"]) >= 20
        snap = app[EDGE].snapshot()
        assert snap["closed_idle"] >= 60 and snap["open"] == 0, snap
        for _r, w in conns:
            w.close()


async def test_deadlines_do_not_cut_a_media_stream(settings):
    s = settings.with_(header_timeout_s=1.0, keepalive_timeout_s=1.0, body_timeout_s=1.0)
    async with serving(s) as (app, url):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url.replace("http", "ws") + "/twilio/media") as ws:
                await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                # three times every deadline: the sweeper has run many times
                deadline = time.monotonic() + 4.0
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    assert not ws.closed
                assert app[EDGE].snapshot()["phases"].get("busy") == 1


async def test_connection_cap_evicts_the_oldest_idle_socket(tmp_path):
    s = Settings(data_dir=tmp_path, trial=True, twilio_validate=False, max_connections=16, header_timeout_s=60)
    async with serving(s) as (app, url):
        host, port = hostport(url)
        conns = [await asyncio.open_connection(host, port) for _ in range(40)]
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                assert (await http.get(url + "/livez")).status == 200
        snap = app[EDGE].snapshot()
        assert snap["open"] <= 16 and snap["evicted"] >= 24, snap
        for _r, w in conns:
            w.close()


def test_accept_error_storm_is_logged_once_per_period(caplog):
    import errno

    now = [0.0]
    throttle = AcceptErrorThrottle(every_s=10.0, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.WARNING, logger="bot.edge"):
            for i in range(60_000):
                now[0] = i * 0.00025  # 60,000 in 15 s
                throttle(loop, {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.close()
    lines = [r for r in caplog.records if r.name == "bot.edge"]
    assert 1 <= len(lines) <= 2 and throttle.total == 60_000
    assert all(r.exc_info is None for r in lines)


SERVER_SCRIPT = r"""
import asyncio, resource, socket, sys
from pathlib import Path

resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from bot import logs
from bot.providers.registry import Providers
from bot.shell.server import serve
from bot.settings import Settings
from handlers.app import create_app
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

logs.setup("INFO")
tmp, port_file = Path(sys.argv[1]), Path(sys.argv[2])
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
s = Settings(data_dir=tmp / "data", host="127.0.0.1", port=port, twilio_auth_token="t", max_connections=100000,
             header_timeout_s=2.0, keepalive_timeout_s=2.0, drain_seconds=0)


async def main():
    app = create_app(s, providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)
    task = asyncio.create_task(serve(s, app))
    while True:  # tell the test the port once it answers
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    port_file.write_text(str(port))
    await task


asyncio.run(main())
"""


def test_low_file_limit_server_keeps_answering_and_its_log_small(tmp_path):
    """A subprocess server with RLIMIT_NOFILE 128 and 300 connections thrown at it."""
    port_file = tmp_path / "port"
    log_path = tmp_path / "server.log"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(tmp_path), str(port_file)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        port = int(port_file.read_text())

        async def attack() -> list[int]:
            conns = []
            for _ in range(300):
                with contextlib.suppress(OSError):
                    conns.append(await asyncio.open_connection("127.0.0.1", port))
            statuses = []
            async with aiohttp.ClientSession() as http:
                for _ in range(5):
                    async with asyncio.timeout(30):
                        statuses.append((await http.get(f"http://127.0.0.1:{port}/livez")).status)
                # malformed requests: one short line each at most, never a traceback
                for _ in range(200):
                    with contextlib.suppress(OSError):
                        r, w = await asyncio.open_connection("127.0.0.1", port)
                        w.write(b"\x16\x03\x01 GARBAGE \r\n\r\n")
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(r.read(), 10)
                        w.close()
            for _r, w in conns:
                w.close()
            return statuses

        statuses = asyncio.run(attack())
        assert statuses == [200] * 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log_path.read_text()
    assert len(text) < 20_000, text[-3000:]
    assert "Traceback" not in text and "ImportError" not in text


# ---------------------------------------------------------------- logs


def test_request_id_and_fields_cannot_forge_log_lines(caplog):
    from handlers.errors import request_id

    assert request_id("abc-123") == "abc-123"
    forged = "x\trequest_id=admin\nINFO handlers fake line"
    rid = request_id(forged)
    assert rid != forged and rid.isalnum()
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "a\nb", (), None)
    rec.fields = {"request_id": forged, "path": "/a b", "ok": "plain", "eq": "k=v"}
    line = logs.KeyValueFormatter().format(rec)
    assert "\n" not in line and "\t" not in line
    assert "ok=plain" in line and 'eq="k=v"' in line
    assert line.count("request_id=") == 2 and "\\trequest_id=admin" in line  # escaped inside one quoted value


async def test_forged_request_id_over_the_wire(settings, caplog):
    async with serving(settings) as (_app, url):
        host, port = hostport(url)
        r, w = await asyncio.open_connection(host, port)
        w.write(b"POST /v1/orchestrate HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01b\tc=d\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        reply = await closed_by_server(r, 30)
        assert b"\x01" not in reply and b"a\x01b" not in reply


def test_piper_does_not_log_what_the_bot_says(engines, caplog):
    _stt, tts = engines
    old = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        logs.setup("DEBUG")
        with caplog.at_level(logging.DEBUG):
            b"".join(tts._chunks("Thanks, Sarah Johnson, I have 4 1 5 5 5 5 1 2 3 4."))
        assert not [r for r in caplog.records if "Sarah" in r.getMessage()]
        assert logging.getLogger("piper").getEffectiveLevel() >= logging.WARNING
    finally:
        logging.getLogger().handlers[:], _ = old[0], logging.getLogger().setLevel(old[1])


async def test_logged_transcripts_mask_numbers(aiohttp_client, settings, caplog):
    stt = ScriptedSTT(text="my number is 415 555 1234, or four one five five five five")
    c = await aiohttp_client(app_for(settings.with_(log_transcripts=True), stt))
    with caplog.at_level(logging.INFO, logger="handlers.orchestrate"):
        r = await c.post("/v1/orchestrate", data=WAV1S, headers={"Content-Type": "audio/wav"})
    assert r.status == 200
    lines = [logs.KeyValueFormatter().format(x) for x in caplog.records if x.getMessage() == "transcript"]
    assert lines and not any(d in lines[0] for d in ("555", "1234", "four one five"))
    assert redact.transcript("table for 2 at 7") == "table for 2 at 7"


async def test_disconnect_mid_upload_is_one_line_without_traceback(settings, caplog):
    async with serving(settings) as (_app, url):
        host, port = hostport(url)
        with caplog.at_level(logging.INFO):
            r, w = await asyncio.open_connection(host, port)
            w.write(b"POST /v1/orchestrate HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n" + WAV1S[:1000])
            await w.drain()
            w.close()
            await eventually(lambda: any(x.getMessage() == "request" for x in caplog.records), 30, 0.05)
    reqs = [x for x in caplog.records if x.getMessage() == "request"]
    assert len(reqs) == 1 and reqs[0].fields["outcome"] == "client_gone"
    assert not [x for x in caplog.records if x.exc_info or x.levelno >= logging.ERROR]


async def test_malformed_requests_write_no_traceback(settings, caplog):
    logs.quiet_protocol_errors()
    async with serving(settings) as (_app, url):
        host, port = hostport(url)
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            for junk in (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -4\r\n\r\n", b"\x00\x01\x02\r\n\r\n"):
                r, w = await asyncio.open_connection(host, port)
                w.write(junk)
                reply = await closed_by_server(r, 30)
                assert reply.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), reply[:80]
                w.close()
    assert not [x for x in caplog.records if x.exc_info and x.levelno > logging.DEBUG]


# ---------------------------------------------------------------- files


async def test_data_dir_and_database_are_private(tmp_path):
    from bot.store import NewMessage, open_store

    old = os.umask(0o022)
    try:
        d = private_dir(tmp_path / "data" / "deeper")
        assert stat.S_IMODE(d.stat().st_mode) == 0o700 and stat.S_IMODE(d.parent.stat().st_mode) == 0o700
        store = await open_store(Settings(data_dir=tmp_path / "data", trial=True, twilio_validate=False))
        try:
            await store.save_message(NewMessage(call_sid="c", caller="+15551234567", name="n", callback_number="+15551234567", about="t"))
        finally:
            await store.close()
        files = list((tmp_path / "data").glob("phonebot.sqlite3*"))
        assert files
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        loose = tmp_path / "loose.db"
        loose.write_bytes(b"")
        loose.chmod(0o644)
        assert stat.S_IMODE(private_file(loose).stat().st_mode) == 0o600
    finally:
        os.umask(old)


async def test_prompt_cache_dir_is_private(aiohttp_client, tmp_path):
    old = os.umask(0o022)
    try:
        await aiohttp_client(app_for(Settings(data_dir=tmp_path / "fresh", trial=True, twilio_validate=False)))
    finally:
        os.umask(old)
    for d in (tmp_path / "fresh", tmp_path / "fresh" / "prompts"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


# ---------------------------------------------------------------- WAV


def test_wav_with_a_million_empty_chunks_is_refused_quickly(settings):
    body = b"LIST\0\0\0\0" * 1_300_000
    data = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body
    with pytest.raises(wav.WavError, match="chunks"):
        wav.read(data)
    ok = wav.write_pcm16(b"\0\0" * 800, 8000)
    assert wav.read(ok[:12] + b"LIST\0\0\0\0" * 10 + ok[12:]).seconds == pytest.approx(0.1)


async def test_route_parses_wav_off_the_loop(aiohttp_client, settings, monkeypatch):
    seen = []
    real = wav.read

    def spy(data, max_seconds=None):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(data, max_seconds)

    monkeypatch.setattr(wav, "read", spy)
    c = await aiohttp_client(app_for(settings))
    r = await c.post("/v1/orchestrate", data=WAV1S, headers={"Content-Type": "audio/wav"})
    assert r.status == 200 and seen == [False]


# ---------------------------------------------------------------- embedded STT queue


class _Seg:
    def __init__(self, text: str) -> None:
        self.text, self.no_speech_prob, self.avg_logprob = text, 0.0, 0.0


class FakeModel:
    """faster-whisper's shape: transcribe() returns a lazy generator of segments.
    ``gate`` holds the first segment of the job tagged 'hold'."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.segments_made = 0
        self.gate = threading.Event()
        self.started = threading.Event()

    def transcribe(self, audio, **_kw):
        tag = {1: "hold", 2: "api", 3: "phone", 4: "slow"}[int(round(audio[0] * 32768 / 1000))]
        self.order.append(tag)

        def gen():
            for i in range(50 if tag == "slow" else 1):
                if tag == "hold":
                    self.started.set()
                    self.gate.wait(60)
                if tag == "slow":
                    self.started.set()
                    time.sleep(0.02)
                self.segments_made += 1
                yield _Seg(f"{tag}{i}")

        return gen(), None


def tagged(n: int) -> bytes:
    return struct.pack("<h", 1000 * n) * 1600  # 0.1 s at 16 kHz, first sample names the job


def fake_whisper() -> tuple[WhisperSTT, FakeModel]:
    stt = WhisperSTT()
    stt._worker, stt._model = _Worker(), FakeModel()
    return stt, stt._model


async def test_phone_turns_go_ahead_of_api_requests():
    stt, model = fake_whisper()
    try:
        hold = asyncio.create_task(stt.transcribe(tagged(1), 16000))
        await asyncio.to_thread(model.started.wait, 30)
        with api_lane():
            api = asyncio.create_task(stt.transcribe(tagged(2), 16000))
        await asyncio.sleep(0)
        phone = asyncio.create_task(stt.transcribe(tagged(3), 16000))
        await asyncio.sleep(0.05)
        model.gate.set()
        assert await asyncio.wait_for(asyncio.gather(hold, api, phone), 30) == ["hold0", "api0", "phone0"]
        assert model.order == ["hold", "phone", "api"]  # queued later, served first
        assert PHONE < API
    finally:
        model.gate.set()
        await stt.close()


async def test_timed_out_stt_job_stops_and_queued_one_is_dropped():
    stt, model = fake_whisper()
    try:
        # a running job stops between segments once its caller gives up
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stt.transcribe(tagged(4), 16000), 0.2)
        await eventually(lambda: stt.jobs_stopped, 30)
        assert stt.jobs_stopped == 1 and model.segments_made < 50
        # a queued job whose caller gave up is never run
        model.started.clear()
        hold = asyncio.create_task(stt.transcribe(tagged(1), 16000))
        await asyncio.to_thread(model.started.wait, 30)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stt.transcribe(tagged(2), 16000), 0.1)
        model.gate.set()
        assert await asyncio.wait_for(hold, 30) == "hold0"
        assert await asyncio.wait_for(stt.transcribe(tagged(3), 16000), 30) == "phone0"
        assert "api" not in model.order and stt.jobs_dropped == 1
    finally:
        model.gate.set()
        await stt.close()
