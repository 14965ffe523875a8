"""Start-up: the port first, /livez at once, /readyz and calls wait for the models;
one-line errors for a port in use and an unwritable DATA_DIR."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from bot.providers.registry import Providers
from bot.shell.server import StartupError, bind, prepare_data_dir, serve
from handlers.app import create_app
from tests.conftest import REPO, caller_wav
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS


@dataclass
class SlowSTT(ScriptedSTT):
    """An STT whose start() (the model loading) waits until the test lets it go."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail: Exception | None = None

    async def start(self) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail


def providers(stt) -> Providers:
    return Providers(stt=stt, llm=ScriptedLLM(), tts=ScriptedTTS())


async def until_ready(client, seconds: float = 30.0) -> dict:
    async with asyncio.timeout(seconds):
        while True:
            r = await client.get("/readyz")
            if r.status == 200:
                return await r.json()
            await asyncio.sleep(0.05)


async def test_live_at_once_ready_after_loading_and_calls_wait(aiohttp_client, settings):
    stt = SlowSTT()
    app = create_app(settings, providers=providers(stt), embedded_prompt_fallback=False, background_startup=True)
    client = await aiohttp_client(app)
    assert (await client.get("/livez")).status == 200
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["ready"] is False and body["loading"] == "stt scripted-stt", body
    # a call now gets the polite busy answer, not a stream into half-loaded models
    r = await client.post("/twilio/voice", data={"CallSid": "CA" + "1" * 32, "From": "+15550001234"})
    twiml = await r.text()
    assert r.status == 200 and "<Hangup" in twiml and "<Connect" not in twiml, twiml
    r = await client.post("/v1/orchestrate", data=caller_wav("yes_joe.wav"), headers={"Content-Type": "audio/wav"})
    assert r.status == 503 and (await r.json())["error"]["code"] == "starting"
    stt.gate.set()
    body = await until_ready(client)
    assert body["ready"] is True
    r = await client.post("/twilio/voice", data={"CallSid": "CA" + "2" * 32, "From": "+15550001234"})
    assert "<Connect" in await r.text()
    metrics = await (await client.get("/metrics")).text()
    assert 'phonebot_calls_rejected_total{reason="starting"} 1.0' in metrics


async def test_startup_logs_progress(aiohttp_client, settings, caplog):
    caplog.set_level("INFO")
    stt = SlowSTT()
    stt.gate.set()
    client = await aiohttp_client(create_app(settings, providers=providers(stt), embedded_prompt_fallback=False, background_startup=True))
    await until_ready(client)
    messages = [r.getMessage() for r in caplog.records if r.name == "handlers.startup"]
    assert "loading stt: scripted-stt..." in messages and "loading tts: scripted-tts..." in messages, messages
    renders = [m for m in messages if m.startswith("rendering prompts")]
    assert renders[0] == "rendering prompts 1/7..." and renders[-1] == "rendering prompts 7/7...", renders
    assert messages[-1] == "ready"


async def test_a_failed_background_startup_stops_the_server_with_one_line(settings):
    stt = SlowSTT(fail=ValueError("business.json: missing hours"))
    stt.gate.set()
    app = create_app(settings, providers=providers(stt), embedded_prompt_fallback=False, background_startup=True)
    sock = bind("127.0.0.1", 0)
    with pytest.raises(StartupError, match="business.json: missing hours"):
        await asyncio.wait_for(serve(settings.with_(host="127.0.0.1"), app, sock), 30)


def test_port_in_use_and_unwritable_data_dir_are_startup_errors(tmp_path):
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(StartupError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind("127.0.0.1", port)
    finally:
        taken.close()
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(StartupError, match="DATA_DIR=.* is not a writable directory"):
        prepare_data_dir(a_file / "data")
    prepare_data_dir(tmp_path / "new" / "data")
    assert (tmp_path / "new" / "data").is_dir()


def test_server_on_a_busy_port_says_so_in_one_line(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TWILIO_VALIDATE": "false", "HOST": "127.0.0.1",
               "PORT": str(taken.getsockname()[1]), "DATA_DIR": str(tmp_path / "data")}
        r = subprocess.run([sys.executable, "-m", "bot"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert r.returncode == 2
    assert "start-up failed: port" in r.stderr and "already in use" in r.stderr and "Traceback" not in r.stderr, r.stderr
