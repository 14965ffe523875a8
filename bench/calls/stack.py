"""The processes under test: the cloud fakes (bench/fakes_server.py, with a latency
profile) and the bot (``python -m bot``, configured only through its environment):
start them, wait until they are ready, read their metrics and logs, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.calls.measure import free_port, tree

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    loop: str
    fakes: asyncio.subprocess.Process
    server: asyncio.subprocess.Process
    url: str
    token: str
    tmp: Path
    env: dict
    log_path: Path
    log_offset: int = 0


def has_uvloop() -> bool:
    try:
        import uvloop  # type: ignore  # noqa: F401

        return True
    except ImportError:
        return False


# the embedded default: no cloud provider is used, whatever keys the stack sets
EMBEDDED_ENV = {"STT_PROVIDER": "whisper", "LLM_PROVIDER": "receptionist", "TTS_PROVIDER": "piper"}


async def wait_ready(server, url: str, log_path: Path, who: str, seconds: float, poll_s: float = 0.2) -> None:
    """Until ``url``/readyz answers 200; an exited server or the deadline raises with its log."""
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while True:
            if server.returncode is not None:
                raise RuntimeError(f"{who} exited with {server.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
            try:
                async with http.get(url + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{who} was not ready within {seconds:.0f} s; see {log_path}")
            await asyncio.sleep(poll_s)


def timing_env(args) -> dict[str, str]:
    """The bot's END_SILENCE_MS, EARLY_TURN_MS, MEDIA_FRAMES_PER_MESSAGE and
    DEEPGRAM_ENDPOINTING_MS the flags ask for (the bot's own defaults otherwise)."""
    env = {}
    if args.end_silence_ms is not None:
        env["END_SILENCE_MS"] = str(args.end_silence_ms)
    if args.early_turn_ms is not None:
        env["EARLY_TURN_MS"] = str(args.early_turn_ms)
    if getattr(args, "frames_per_message", None) is not None:
        env["MEDIA_FRAMES_PER_MESSAGE"] = str(args.frames_per_message)
    if getattr(args, "endpointing_ms", None) is not None:
        env["DEEPGRAM_ENDPOINTING_MS"] = str(args.endpointing_ms)
    return env


async def start_stack(args, loop: str, tmp: Path, extra_env: dict | None = None) -> Stack:
    p = args.profile
    fargs = ["--stt-delay", str(p.stt_delay_s), "--llm-first", str(p.llm_first_s), "--llm-tps", str(p.llm_tokens_per_s),
             "--tts-first", str(p.tts_first_s), "--tts-chunk-delay", str(p.tts_chunk_delay_s), "--reply", p.reply]
    if getattr(args, "live", False):
        fargs.append("--live")
    if getattr(args, "pauses", False):  # the fake STT hears which half of a paused sentence it got
        fargs.append("--hear-pauses")
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fakes_server", *fargs, cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=open(tmp / "fakes.log", "ab"),
    )
    line = await asyncio.wait_for(fakes.stdout.readline(), 30)
    fport = json.loads(line)["port"]
    fbase = f"http://127.0.0.1:{fport}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV") if k in os.environ}
    env.update({
        "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": url, "TWILIO_AUTH_TOKEN": token,
        "DATA_DIR": str(tmp / "data"), "MAX_CALLS": "100000", "LOG_LEVEL": "INFO",
        "WORKERS": str(getattr(args, "bot_workers", 1)),  # CPU and RSS are summed over the supervisor's workers
        "STT_PROVIDER": "deepgram", "LLM_PROVIDER": "openai", "TTS_PROVIDER": "elevenlabs",
        "DEEPGRAM_API_KEY": "dg-bench", "OPENAI_API_KEY": "sk-bench", "ELEVENLABS_API_KEY": "el-bench",
        "DEEPGRAM_BASE_URL": fbase, "OPENAI_BASE_URL": fbase + "/v1", "ELEVENLABS_BASE_URL": fbase,
        # prerecorded Deepgram by default (the profile's STT delay); --live: Deepgram's socket
        "STT_STREAMING": "true" if getattr(args, "live", False) else "false",
    })
    if getattr(args, "speculative_llm", None) is not None:
        env["SPECULATIVE_LLM"] = args.speculative_llm
    env.update(timing_env(args))
    if getattr(args, "completeness", None) is not None:
        env["TURN_COMPLETENESS"] = args.completeness
    if getattr(args, "complete_ms", None) is not None:
        env["TURN_COMPLETE_MS"] = str(args.complete_ms)
    env.update(extra_env or {})
    if loop == "asyncio":  # bot/__main__.py takes uvloop when it can import it: make it not
        cmd = ["-c", "import sys; sys.modules['uvloop'] = None; from bot.__main__ import main; sys.exit(main(['serve']))"]
    else:
        cmd = ["-m", "bot"]
    log_path = tmp / f"server-{loop}.log"
    server = await asyncio.create_subprocess_exec(sys.executable, *cmd, cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=open(log_path, "ab"))
    stack = Stack(loop, fakes, server, url, token, tmp, env, log_path)
    await wait_ready(server, url, log_path, "the bot", 60.0)
    stack.log_offset = log_path.stat().st_size
    uses_uvloop = "uvloop" in Path(f"/proc/{tree(server.pid)[-1]}/maps").read_text()  # a worker, with --bot-workers
    if uses_uvloop != (loop == "uvloop"):
        raise RuntimeError(f"asked for the bot on {loop}, but uvloop is {'' if uses_uvloop else 'not '}loaded in it")
    return stack


def check_alive(stack: Stack) -> None:
    if stack.server.returncode is not None:
        tail = "\n".join(stack.log_path.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"the bot exited with {stack.server.returncode} during the run; its log ends:\n{tail}")


async def stop(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def scrape(url: str) -> dict[str, float]:
    import aiohttp

    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as r:
            text = await r.text()
    for line in text.splitlines():
        if line.startswith("phonebot_") and not line.startswith("#"):
            name, _, val = line.rpartition(" ")
            if "_bucket" not in name:
                out[name] = float(val)
    return out


def log_counts(stack: Stack) -> dict[str, int]:
    """WARNING/ERROR lines the bot logged since the last call, by message."""
    with open(stack.log_path, "rb") as f:
        f.seek(stack.log_offset)
        data = f.read().decode(errors="replace")
    stack.log_offset += len(data.encode())
    counts: dict[str, int] = {}
    for line in data.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1] in ("WARNING", "ERROR", "CRITICAL"):
            msg = parts[3].split(" call_sid=")[0].split(" stage=")[0][:60]
            counts[f"{parts[1]} {msg}"] = counts.get(f"{parts[1]} {msg}", 0) + 1
    return counts


@contextlib.contextmanager
def workdir(args):
    if args.log_dir:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        yield args.log_dir
    else:
        with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmpd:
            yield tmpd
