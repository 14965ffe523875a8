"""Two bot instances on one PostgreSQL: a server process and an in-process app each take
a call; each sees the other's call record and messages (the shared store of a
multi-instance deployment). Also: python -m bot messages reads from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.providers.registry import Providers
from bot.store import NewMessage
from handlers.app import create_app
from handlers.storage import STORE
from tests.conftest import caller_path
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.storage_rig import PG_URL

ROOT = Path(__file__).resolve().parent.parent
KEY = "two-instances-key-0123456789"
SPEECH = caller_path("open_tomorrow_joe.wav")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="no PostgreSQL server: set TEST_DATABASE_URL (.ci/run starts one)"))])
async def test_two_instances_share_calls_and_messages(aiohttp_server, settings, tmp_path, db_url, backend):
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.fakes_server", "--stt-delay", "0.05", "--llm-first", "0.05",
                                                 "--tts-first", "0.05", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                 stderr=open(tmp_path / "fakes.log", "ab"))
    bot = None
    try:
        fbase = f"http://127.0.0.1:{json.loads(await asyncio.wait_for(fakes.stdout.readline(), 60))['port']}"
        port, token = free_port(), secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
        env.update({
            "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": url, "TWILIO_AUTH_TOKEN": token, "DATA_DIR": str(tmp_path / "b"),
            "DATABASE_URL": db_url, "API_KEY": KEY, "STT_PROVIDER": "deepgram", "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs",
            "DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk", "ELEVENLABS_API_KEY": "el", "STT_STREAMING": "false",
            "DEEPGRAM_BASE_URL": fbase, "OPENAI_BASE_URL": fbase + "/v1", "ELEVENLABS_BASE_URL": fbase,
        })
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=open(tmp_path / "bot.log", "ab"))
        # instance A: in this process, on the same database
        app = create_app(settings.with_(database_url=db_url, end_silence_ms=500, stt_timeout=0.5, llm_timeout=0.5, tts_timeout=0.5),
                         providers=Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS()), embedded_prompt_fallback=False)
        server = await aiohttp_server(app)
        a_url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # cookies for 127.0.0.1
            deadline = time.monotonic() + 90
            while True:
                assert bot.returncode is None, (tmp_path / "bot.log").read_text()[-2000:]
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "instance B not ready in 90 s"
                await asyncio.sleep(0.3)
            call_b = await simulate_call(url, [SPEECH], auth_token=token, from_number="+15550000002")
            call_a = await simulate_call(a_url, [SPEECH], from_number="+15550000001")
            store = app[STORE]
            mid = await store.save_message(NewMessage(call_sid=call_a.call_sid, caller="+15550000001", name="Ann", callback_number="5550000001", about="from A"))

            async def ended(sid):
                for _ in range(200):
                    rec = await store.call(sid)
                    if rec and rec.ended_at:
                        return rec
                    await asyncio.sleep(0.1)
                raise AssertionError(f"no ended record for {sid}")

            rec_b = await ended(call_b.call_sid)  # A sees B's call
            assert rec_b.caller == "+15550000002" and rec_b.outcome == "answered" and len(rec_b.turns) == 1
            await ended(call_a.call_sid)
            # B sees A's call and A's message (its console reads the shared store)
            async with http.get(f"{url}/console?key={KEY}") as r:
                assert r.status == 200
                calls_html = await r.text()
            async with http.get(f"{url}/console/messages") as r:
                messages_html = await r.text()
        assert call_a.call_sid in calls_html and call_b.call_sid in calls_html
        assert f'id="message-{mid}"' in messages_html and "from A" in messages_html
        cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "messages", "--json", cwd=ROOT, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cli.communicate(), 90)
        assert [json.loads(line)["id"] for line in out.decode().splitlines()] == [mid], err.decode()[-1000:]
    finally:
        for p in (bot, fakes):
            if p is not None and p.returncode is None:
                p.terminate()
                await p.wait()
