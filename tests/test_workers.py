"""WORKERS=2: real ``python -m bot`` supervisors on the cloud fakes, one server to the outside.

- One instance in trial mode (its workers share one random stream-token key): the port
  answers at once; once ``/readyz`` is 200 every fresh connection reaches a ready worker;
  calls whose webhook, websocket and <Connect action> use separate connections are all
  admitted; ``/metrics`` sums the workers; a killed worker is steered around at once
  (a call placed during its restart is answered) and comes back; SIGTERM gives every
  live caller the goodbye, and a normal stop logs no warning.
- Two instances with WORKERS=2 each on one PostgreSQL: webhook, websocket and
  <Connect action> of each call on different instances (and processes): every call
  admitted once, every transfer carried out, every replay refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from bot.carriers.twilio.simulator import simulate_call
from bot.simulator import Dtmf
from tests.conftest import caller_path
from tests.storage_rig import PG_URL

ROOT = Path(__file__).resolve().parent.parent
DRAIN_S = 4.0
SPEECH = caller_path("open_tomorrow_joe.wav")
TOKEN = "w" * 32
PUBLIC = "http://bot.example.test"
FRONT_DESK = "+15550001111"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "TWILIO_AUTH_TOKEN": TOKEN, "DATA_DIR": str(tmp_path / "data"),
                "WORKERS": "2", "DRAIN_SECONDS": str(DRAIN_S),
                "HEALTH_DETAIL": "public"})  # the worker's pid is in /healthz's detail
    return env


def cloud_env(fakes: str) -> dict[str, str]:
    return {"STT_PROVIDER": "deepgram", "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs", "STT_STREAMING": "false",
            "DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk", "ELEVENLABS_API_KEY": "el",
            "DEEPGRAM_BASE_URL": fakes, "OPENAI_BASE_URL": fakes + "/v1", "ELEVENLABS_BASE_URL": fakes}


async def start_fakes(tmp_path: Path):
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.fakes_server", "--stt-delay", "0.05", "--llm-first", "0.05",
                                                 "--tts-first", "0.05", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                 stderr=open(tmp_path / "fakes.log", "ab"))
    assert fakes.stdout is not None
    return fakes, f"http://127.0.0.1:{json.loads(await asyncio.wait_for(fakes.stdout.readline(), 60))['port']}"


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    """(status, JSON body) of one request on a fresh connection; (0, {}) if nothing answered."""
    try:
        async with http.get(url) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, json.JSONDecodeError):
        return 0, {}


async def until_ready(http, url: str, proc, log: Path, within_s: float = 180) -> list[int]:
    """Poll /readyz until 200; every answer before it is a 503 (from the supervisor or a
    worker). Returns the statuses seen."""
    seen = []
    deadline = time.monotonic() + within_s
    while True:
        assert proc.returncode is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"not ready in {within_s} s; log:\n{log.read_text()[-3000:]}"
        status, _ = await get(http, url + "/readyz")
        seen.append(status)
        if status == 200:
            return seen
        await asyncio.sleep(0.3)


def healthz_count(text: str) -> float:
    m = re.search(r'^phonebot_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_workers_are_one_server_from_start_to_drain(tmp_path):
    fakes, fbase = await start_fakes(tmp_path)
    bot = None
    log = tmp_path / "bot.log"
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = base_env(tmp_path, port) | cloud_env(fbase) | {"TRIAL": "true"}
        del env["TWILIO_AUTH_TOKEN"]  # trial: the workers must share the supervisor's random token key
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=open(log, "ab"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            seen = await until_ready(http, url, bot, log)
            assert set(seen) <= {0, 503, 200} and seen.count(0) < len(seen)
            # one server: every fresh connection now reaches a ready worker
            answers = [await get(http, url + "/readyz") for _ in range(12)]
            assert [s for s, _ in answers] == [200] * 12, answers
            pids = {b["pid"] for _, b in answers}
            deadline = time.monotonic() + 90  # the second worker may still be loading: it gets no connection until ready
            while len(pids) < 2 and time.monotonic() < deadline:
                pids.add((await get(http, url + "/healthz"))[1]["worker"]["pid"])
                await asyncio.sleep(0.2)
            assert len(pids) == 2 and bot.pid not in pids
            async with http.get(url + "/metrics") as r:
                asked = healthz_count(await r.text())
            for _ in range(4):
                await get(http, url + "/healthz")
            async with http.get(url + "/metrics") as r:  # any worker sums them all
                text = await r.text()
            assert healthz_count(text) == asked + 4, text[:2000]

            # calls as Twilio places them: webhook, websocket and action each on a new connection
            reports = await asyncio.gather(*(simulate_call(url, [SPEECH], separate_connections=True, follow_action=True, max_wait_s=15)
                                             for _ in range(4)))
            for r in reports:
                assert not r.rejected and r.greeting_ms is not None and r.turns[0].first_audio_ms is not None, r
                assert "<Hangup" in r.action_twiml and "<Say>" not in r.action_twiml

            # a worker dies: new connections go to the other at once, and a call placed now is answered
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            await asyncio.sleep(0.3)  # (a connection in the dead worker's queue at that instant gets the supervisor's 503)
            call = asyncio.create_task(simulate_call(url, [SPEECH], separate_connections=True, max_wait_s=15))
            during = [(await get(http, url + "/healthz"))[1].get("worker", {}).get("pid") for _ in range(10)]
            assert set(during) == pids - {victim}, during
            status, body = await get(http, url + "/readyz")  # one server: not ready until every worker is
            assert status == 503 and "workers 1/2 ready" in body["problems"], body
            r = await call
            assert not r.rejected and r.greeting_ms is not None, r
            await until_ready(http, url, bot, log)
            assert "worker exited" in log.read_text()

            # drain: callers in the middle of their call hear the goodbye, then the hang-up
            calls = [asyncio.create_task(simulate_call(url, [SPEECH] * 4, separate_connections=True, max_wait_s=15, gap_s=0.5))
                     for _ in range(2)]
            for _ in range(200):
                if (await get(http, url + "/readyz"))[1].get("live_calls") == 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(3.0)
            t0 = time.monotonic()
            before = len(log.read_text())
            bot.send_signal(signal.SIGTERM)
            for r in await asyncio.gather(*calls):
                assert "end-goodbye" in r.marks_echoed and r.hung_up_by_bot, r
        code = await asyncio.wait_for(bot.wait(), DRAIN_S + 30)
        assert code == 0 and time.monotonic() - t0 < DRAIN_S + 30, log.read_text()[-3000:]
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        stop = text[before:]
        assert "worker exited" not in stop and "worker stopped" in stop
        # every worker line names its worker
        worker_lines = [ln for ln in text.splitlines() if " handlers." in ln or " bot.call " in ln]
        assert worker_lines and all(re.search(r" worker=[01]\b", ln) for ln in worker_lines)
    finally:
        for proc in (bot, fakes):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


def signed(path: str, form: dict) -> dict:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)}


@pytest.mark.skipif(not PG_URL, reason="no PostgreSQL server: set TEST_DATABASE_URL (.ci/run starts one)")
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_instances_with_two_workers_each_on_one_postgresql(tmp_path, db_url, backend):
    fakes, fbase = await start_fakes(tmp_path)
    procs: list = []
    try:
        urls = []
        for name in ("a", "b"):
            port = free_port()
            env = base_env(tmp_path / name, port) | cloud_env(fbase) | {
                "PUBLIC_URL": PUBLIC, "DATABASE_URL": db_url, "TRANSFER_NUMBER": FRONT_DESK,
            }
            log = tmp_path / f"{name}.log"
            procs.append((await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env,
                                                              stdout=asyncio.subprocess.DEVNULL, stderr=open(log, "ab")), log))
            urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for u, (p, log) in zip(urls, procs, strict=True):
                await until_ready(http, u, p, log)
            a, b = urls
            # each call: webhook on one instance, websocket on the other, action on the first; every
            # other call asks for a person (DTMF 0) and is transferred through the <Connect action>
            plans = [(a, b, a), (b, a, a), (a, b, b), (b, a, b), (a, a, b), (b, b, a)]
            reports = await asyncio.gather(*(
                simulate_call(hook, [SPEECH, Dtmf("0")] if i % 2 else [SPEECH], public_url=PUBLIC, auth_token=TOKEN,
                              separate_connections=True, stream_to=ws, action_to=act, max_wait_s=15)
                for i, (hook, ws, act) in enumerate(plans)
            ))
            for i, r in enumerate(reports):
                assert not r.rejected and r.greeting_ms is not None, (i, r)
                if i % 2:
                    assert f">{FRONT_DESK}</Dial>" in r.action_twiml, (i, r.action_twiml)  # transfer carried out
            # every replay refused: the webhook on either instance gets no stream ...
            for r in reports:
                for u in urls:
                    form = {"CallSid": r.call_sid, "From": "+15551234567", "To": "+15557654321"}
                    async with http.post(u + "/twilio/voice", data=form, headers=signed("/twilio/voice", form)) as resp:
                        twiml = await resp.text()
                    assert "<Stream" not in twiml and "<Hangup" in twiml, twiml
            # ... and a stream's start replayed (on either instance) is closed before any work
            form = {"CallSid": "CA" + "5" * 32, "From": "+15551234567", "To": "+15557654321", "Direction": "inbound"}
            async with http.post(a + "/twilio/voice", data=form, headers=signed("/twilio/voice", form)) as resp:
                params = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]+)"', await resp.text()))
            start = json.dumps({"event": "start", "streamSid": "MZ" + "5" * 32, "start": {
                "accountSid": "AC" + "5" * 32, "callSid": form["CallSid"], "streamSid": "MZ" + "5" * 32, "tracks": ["inbound"],
                "customParameters": params, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
            results = []
            for u in (b, a, b):
                headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC.replace("http", "ws") + "/twilio/media", {})}
                async with http.ws_connect(u.replace("http", "ws") + "/twilio/media", headers=headers) as ws:
                    await ws.send_str(start)
                    msg = await asyncio.wait_for(ws.receive(), 15)
                    results.append(msg.type)
            assert results == [aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSE], results
            # every call slot is free again on both instances
            for u in urls:
                for _ in range(100):
                    status, body = await get(http, u + "/readyz")
                    if body.get("live_calls") == 0:
                        break
                    await asyncio.sleep(0.1)
                assert body.get("live_calls") == 0, body
        for _p, log in procs:
            text = log.read_text()
            assert "Traceback" not in text and "IntegrityError" not in text, text[-3000:]
    finally:
        for p, _ in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                await asyncio.wait_for(p.wait(), DRAIN_S + 30)
            except TimeoutError:
                p.kill()
        if fakes.returncode is None:
            fakes.kill()
            await fakes.wait()


def test_port_in_use_is_one_line_and_port_zero_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        env = base_env(tmp_path, busy.getsockname()[1]) | {"TRIAL": "true"}
        r = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "already in use" in r.stderr and r.stderr.count("start-up failed") == 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "bot"], cwd=ROOT, env=base_env(tmp_path, 0) | {"TRIAL": "true"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "PORT=0" in r.stderr, r.stderr


def test_workers_setting():
    from bot.settings import Settings, SettingsError

    env = {"TRIAL": "true"}
    assert Settings.from_env(env | {"WORKERS": "3"}).workers == 3
    assert Settings.from_env(env).workers == 1  # one process unless asked: each worker holds its own models
    with pytest.raises(SettingsError, match="WORKERS"):
        Settings.from_env(env | {"WORKERS": "0"})
