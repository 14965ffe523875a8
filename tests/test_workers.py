"""WORKERS=2: a real ``python -m bot`` supervisor with two workers on the cloud fakes.
Both workers answer on the one port, ``/metrics`` sums them, a killed worker is
restarted, and SIGTERM drains and exits."""

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

ROOT = Path(__file__).resolve().parent.parent
DRAIN_S = 4.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "TWILIO_AUTH_TOKEN": "t" * 32, "DATA_DIR": str(tmp_path / "data"),
                "WORKERS": "2", "DRAIN_SECONDS": str(DRAIN_S),
                "HEALTH_DETAIL": "public"})  # the worker's pid is in /healthz's detail
    return env


async def pid_of(http: aiohttp.ClientSession, url: str) -> int | None:
    """The pid of the worker that answered one fresh connection (None: nobody did)."""
    try:
        async with http.get(url + "/healthz") as r:
            return (await r.json())["worker"]["pid"] if r.status == 200 else None
    except aiohttp.ClientError:
        return None


def healthz_count(text: str) -> float:
    m = re.search(r'^phonebot_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_two_workers_share_port_sum_metrics_restart_and_drain(tmp_path):
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.fakes_server", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                 stderr=open(tmp_path / "fakes.log", "ab"))
    bot = None
    log = tmp_path / "bot.log"
    try:
        fbase = f"http://127.0.0.1:{json.loads(await asyncio.wait_for(fakes.stdout.readline(), 60))['port']}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = base_env(tmp_path, port)
        env.update({"PUBLIC_URL": url, "STT_PROVIDER": "deepgram", "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs",
                    "DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk", "ELEVENLABS_API_KEY": "el", "STT_STREAMING": "false",
                    "DEEPGRAM_BASE_URL": fbase, "OPENAI_BASE_URL": fbase + "/v1", "ELEVENLABS_BASE_URL": fbase})
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=open(log, "ab"))
        # a fresh connection per request, so the kernel picks a worker each time
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            pids: set[int] = set()
            asked = 0
            deadline = time.monotonic() + 120
            while len(pids) < 2:
                assert bot.returncode is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"two workers did not both answer in 120 s (saw {pids})"
                pid = await pid_of(http, url)
                if pid is None:
                    await asyncio.sleep(0.3)
                    continue
                asked += 1
                pids.add(pid)
            assert bot.pid not in pids  # the supervisor never serves
            for _ in range(10):
                assert await pid_of(http, url) in pids
                asked += 1

            # /metrics on any worker counts every worker's /healthz answers
            for _ in range(4):
                async with http.get(url + "/metrics") as r:
                    text = await r.text()
                assert healthz_count(text) == asked, text[:2000]
                assert re.search(r"^phonebot_live_calls 0\.0$", text, re.M), text[:2000]

            # a killed worker comes back (a new pid); the dead one's counts stay in the sums
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while True:
                assert bot.returncode is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"no new worker within 120 s; log:\n{log.read_text()[-3000:]}"
                pid = await pid_of(http, url)
                if pid is not None:
                    asked += 1
                    assert pid != victim
                    if pid not in pids:
                        break
                else:
                    await asyncio.sleep(0.2)
            async with http.get(url + "/metrics") as r:
                assert healthz_count(await r.text()) == asked
            live = (pids - {victim}) | {pid}
            assert "worker exited" in log.read_text()

        # SIGTERM: both workers drain (no calls: at once) and everything exits well within the drain
        t0 = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(bot.wait(), DRAIN_S + 30)
        assert code == 0, log.read_text()[-3000:]
        assert time.monotonic() - t0 < DRAIN_S + 30
        for p in live:
            with pytest.raises(ProcessLookupError):
                os.kill(p, 0)
        text = log.read_text()
        assert text.count("drained") >= 2 and "Traceback" not in text, text[-3000:]
        assert not re.search(r"metrics_dir=(\S+)", text) or not Path(re.search(r"metrics_dir=(\S+)", text).group(1)).exists()
    finally:
        for proc in (bot, fakes):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


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
    assert Settings.from_env(env).workers == len(os.sched_getaffinity(0))
    with pytest.raises(SettingsError, match="WORKERS"):
        Settings.from_env(env | {"WORKERS": "0"})
