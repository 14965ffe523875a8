"""`pip install phonebot[local]`, then `phonebot` from any folder (issue 22, item 1).

Builds the wheel, installs it into a fresh virtual environment outside the checkout (the
locked dependencies with the 'local' extra, linked from uv's cache), and from another folder
runs `phonebot check`, starts the server, fetches the landing page, the console's stylesheet
and health, and places a call with `phonebot call`. Nothing of the checkout is on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_outbox import free_port

UV = shutil.which("uv")
pytestmark = [
    pytest.mark.skipif(UV is None, reason="uv is not installed: the wheel test builds and installs with it (.ci/run installs it)"),
]
# Not in the "embedded" xdist group: its server is a process of its own (it shares no engines
# with that group's workers), and queued behind that group it was the suite's longest chain.


def sh(*args: str, cwd: Path = REPO, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")}
    r = subprocess.run(args, cwd=cwd, env=base | (env or {}), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stdout}\n{r.stderr}"
    return r


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_status(url: str, within_s: float, proc: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server stopped:\n{log.read_text()[-3000:]}"
        status, body = get(url)
        if status == 200:
            return body
        time.sleep(0.25)
    raise AssertionError(f"{url} not 200 within {within_s} s:\n{log.read_text()[-3000:]}")


def test_the_wheel_runs_from_any_folder(tmp_path):
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    sh(UV, "build", "--wheel", "--out-dir", str(dist), "--quiet")
    (wheel,) = dist.glob("phonebot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("bot", "handlers", "media"):  # every module of the checkout is in it
        for f in (REPO / folder).rglob("*.py"):
            assert f.relative_to(REPO).as_posix() in names, f
    for f in (REPO / "web").rglob("*"):  # and what it reads at run time
        if f.is_file():
            assert "bot/_assets/web/" + f.relative_to(REPO / "web").as_posix() in names, f
    assert "bot/_assets/business/property-office.toml" in names
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)

    sh(UV, "venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    sh(UV, "export", "--frozen", "--no-dev", "--extra", "local", "--no-emit-project", "--no-hashes", "--quiet", "-o", str(tmp_path / "req.txt"))
    sh(UV, "pip", "install", "--quiet", "--python", str(python), "-r", str(tmp_path / "req.txt"), str(wheel), timeout=300)
    phonebot = str(venv / "bin" / "phonebot")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TRIAL": "true"}
    where = subprocess.run([str(python), "-c", "import bot, handlers; print(bot.__file__, handlers.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=60)
    assert str(venv) in where.stdout and str(REPO) not in where.stdout, where.stdout + where.stderr

    check = subprocess.run([phonebot, "check"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "ok: the settings are valid" in check.stdout, check.stdout + check.stderr

    port = free_port()
    server_env = env | {"PORT": str(port), "WORKERS": "1", "DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([phonebot], cwd=elsewhere, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_status(base + "/livez", 60, proc, log)  # the stand-in answers it while the app loads
        wait_status(base + "/readyz", 150, proc, log)
        status, landing = get(base + "/")
        assert status == 200 and 'href="/phone"' in landing and 'href="/console"' in landing
        assert get(base + "/console/static/console.css")[0] == 200  # web/ came with the wheel
        health = json.loads(get(base + "/healthz")[1])
        assert health["trial"] is True and set(health["stages"]) == {"stt", "llm", "tts"}  # degraded only by trial mode
        call = subprocess.run([phonebot, "call", str(REPO / "examples" / "callers" / "open_tomorrow_joe.wav"), "--no-transcribe",
                               "--out", str(tmp_path / "heard.wav")], cwd=elsewhere, env=server_env, capture_output=True, text=True, timeout=120)
        assert call.returncode == 0, call.stdout + call.stderr + log.read_text()[-3000:]
        assert "greeting: first audio" in call.stdout and "turn 1:" in call.stdout and "no reply" not in call.stdout, call.stdout
        assert (tmp_path / "heard.wav").stat().st_size > 8000
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
