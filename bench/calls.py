"""N simulated phone calls at once against the bot, each side in its own process.

    uv run --extra local python -m bench.calls                 # N = 1, 50, 100, 300
    uv run --extra local python -m bench.calls --quick         # N = 1, 20, one turn each
    uv run --extra local python -m bench.calls --n 1,50 --loop both
    uv run --extra local python -m bench.calls --soak 200 --seconds 60
    uv run --extra local python -m bench.calls --drain 20

Three kinds of process: the cloud fakes (bench/fakes_server.py, with a latency
profile), the bot (``python -m bot``, configured only through its environment, with
real Twilio signatures), and one or more caller processes running bot.simulator
(``--worker``, fed a JSON job on stdin, answering one JSON line per finished call).
The bot's CPU and memory are read from /proc/<pid>/stat and /proc/<pid>/status.
bench/README.md says what every column means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import math
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
AUDIO = REPO.parent / "shared" / "audio" / "callers"
PAUSES = REPO / "examples" / "callers_pauses"  # utterances with 300-600 ms mid-sentence pauses (--pauses)

from bench.fakes_server import Profile, first_sentence_s, reply_audio_frames  # noqa: E402
from bot.settings import DEFAULT_GREETING, Settings  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
LEAD_FRAMES = 3  # the bot's playout sends 60 ms ahead: its first 4 frames go back to back
SKIP = ("name_number",)  # 7 s utterances: they only make the run longer


# ----------------------------------------------------------------------------- /proc


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's workers with --bot-workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants, seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0.0
    for p in tree(pid):
        try:
            raw = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            if p == pid:
                return float("nan")
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        total += (int(rest[11]) + int(rest[12])) / CLK
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    total = float("nan")
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (0.0 if total != total else total) + int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def calibration() -> str:
    """What machine the table ran on: a fixed pure-Python 10-million-step loop (seconds,
    best of 2; ~1.7 s on the slow reference machine of issue 13), the cores, the load."""
    best = float("inf")
    for _ in range(2):
        t, x = time.perf_counter(), 0
        for i in range(10_000_000):
            x += i
        best = min(best, time.perf_counter() - t)
    return f"calibration: 10M-step Python loop {best:.2f} s; nproc {os.cpu_count()}; load {loadavg()}"


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- caller side


def talk_over(r, barge: bool, onsets_ms: list[float] | None = None) -> tuple[list[int], list[float | None]]:
    """Per turn: bot media messages that arrived while the caller was still inside the
    utterance (its first to last speech frame, mid-sentence pauses included), and the
    time from the caller's first word (``onsets_ms``: where speech begins in each file)
    to the bot's first ``clear`` after it (ms, or None). In a barge-in call every
    utterance starts over bot audio on purpose: only audio after that ``clear`` counts
    as talking over."""
    over: list[int] = []
    clears: list[float | None] = []
    for i, t in enumerate(r.turns):
        onset = onsets_ms[i] if onsets_ms and i < len(onsets_ms) else 0.0
        first_clear = next((c - onset for c in t.clears_ms if c >= onset), None)
        clears.append(None if first_clear is None else round(first_clear, 1))
        start = t.speech_start_s + onset / 1000
        if barge:
            start = start + first_clear / 1000 if first_clear is not None else t.speech_end_s
        over.append(sum(1 for x in r.bot_media_s if start < x <= t.speech_end_s))
    return over, clears


@functools.lru_cache(maxsize=256)
def speech_onset_ms(path: str) -> float:
    """Where speech begins in a caller file: its first 20 ms frame over -40 dBFS."""
    from bot.simulator import load_ulaw
    from media import frames, mulaw

    for i, f in enumerate(frames.split(load_ulaw(path))):
        x = np.frombuffer(mulaw.decode(f), "<i2").astype(np.float32)
        if float(np.sqrt(np.mean(x * x))) > 300:
            return i * 20.0
    return 0.0


def summarize(r, greeting_frames: int, reply_frames: int, planned: int, barge: bool = False,
              onsets_ms: list[float] | None = None) -> dict:
    """One CallReport -> the numbers the tables need (small enough to send as JSON)."""
    from bot.simulator import TurnReport

    runs = []  # (arrival times of one bot utterance, frames expected)
    bounds = [TurnReport(0, 0.0, 0.0)] + list(r.turns)  # the greeting, then each reply
    msgs = list(zip(r.bot_media_s, r.bot_media_frames or [1] * len(r.bot_media_s), strict=True))  # (arrival, frames)
    for i, t in enumerate(bounds):
        start = t.speech_end_s
        end = r.turns[i].speech_start_s if i < len(r.turns) else float("inf")
        runs.append(([m for m in msgs if start <= m[0] < end], greeting_frames if i == 0 else reply_frames))
    fallbacks = sum(1 for m in r.marks_echoed if m.startswith("fallback"))
    normal = not fallbacks and not r.hung_up_by_bot  # else some replies are prompts of another length
    pace, under, under_ms, dropped, where = [], 0, 0.0, 0, []
    for run, (arr, expected) in enumerate(runs):
        if arr and normal:
            dropped += max(0, expected - sum(k for _, k in arr))
        # pacing: each message should follow the last by the audio the last one carried
        sent = 0
        for (a0, k0), (a1, _k1) in zip(arr, arr[1:], strict=False):
            sent += k0
            if sent > LEAD_FRAMES:
                pace.append(round(abs((a1 - a0) * 1000 - 20.0 * k0), 2))
        played_to = None  # Twilio's buffer: when what it holds runs out
        for a, k in arr:
            if played_to is not None and a > played_to + 0.005:
                under += 1
                where.append((run, round((a - arr[0][0]) * 1000), round((a - played_to) * 1000)))
                under_ms += (a - played_to) * 1000
                played_to = a
            played_to = (a if played_to is None else played_to) + 0.02 * k
    over, clears = talk_over(r, barge, onsets_ms)
    turns = [{"ms": t.first_audio_ms, "frames": sum(k for _, k in runs[i + 1][0]), "over": over[i], "clear_ms": clears[i]}
             for i, t in enumerate(r.turns)]
    ok = (not r.rejected and not r.error and r.greeting_ms is not None and not fallbacks and not r.hung_up_by_bot
          and len(turns) == planned and all(t["ms"] is not None for t in turns))
    return {
        "ok": ok, "error": r.error, "rejected": r.rejected, "greeting_ms": r.greeting_ms, "fallbacks": fallbacks,
        "hung_up": r.hung_up_by_bot, "goodbye": "end-goodbye" in r.marks_echoed, "turns": turns,
        "pace": pace, "underruns": under, "underrun_ms": round(under_ms, 1), "underrun_at": where[:20], "dropped": dropped,
        "lag_max": round(max(r.send_late_ms, default=0.0), 1), "lag_n20": sum(1 for x in r.send_late_ms if x > 20),
    }


async def worker(job: dict) -> None:
    import aiohttp

    from bot.simulator import simulate_call

    url, token = job["url"], job["token"]
    out = sys.stdout

    async def call(spec: dict, http) -> None:
        t = time.time()
        try:
            barge = spec.get("barge_in_ms")
            r = await simulate_call(url, spec["utterances"], public_url=url, auth_token=token, gap_s=spec["gap_s"], session=http,
                                    barge_in_after_ms=barge)
            s = summarize(r, job["greeting_frames"], job["reply_frames"], len(spec["utterances"]), barge is not None,
                          [speech_onset_ms(f) for f in spec["utterances"]])
            for turn, f in zip(s["turns"], spec["utterances"], strict=False):  # a cut-short call has fewer turns
                turn["file"] = f
            s["barge"] = barge is not None
        except Exception as exc:  # a simulator bug must show up as a failed call, not a silent worker
            s = {"ok": False, "error": f"simulator: {type(exc).__name__}: {exc}", "turns": [], "pace": []}
        s["t0"], s["t1"] = t, time.time()
        out.write(json.dumps(s) + "\n")
        out.flush()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        if job["mode"] == "calls":

            async def later(spec: dict) -> None:
                await asyncio.sleep(spec["delay_s"])
                await call(spec, http)

            await asyncio.gather(*(later(s) for s in job["calls"]))
        else:  # soak: keep job["concurrency"] calls up until job["seconds"] have passed
            rng = random.Random(job["seed"])
            deadline = time.monotonic() + job["seconds"]

            async def slot(i: int) -> None:
                await asyncio.sleep(i * job["ramp_s"] / job["concurrency"])
                while time.monotonic() < deadline:
                    await call(script(rng, job["pool"], job["turns"]), http)

            await asyncio.gather(*(slot(i) for i in range(job["concurrency"])))


def script(rng: random.Random, pool: list[str], turns: int, delay_s: float = 0.0) -> dict:
    return {"utterances": rng.sample(pool, turns), "gap_s": round(rng.uniform(0.4, 1.0), 2), "delay_s": delay_s}


def worker_main() -> int:
    job = json.loads(sys.stdin.read())
    run = asyncio.run
    if job.get("uvloop"):
        import uvloop  # type: ignore

        run = uvloop.run
    run(worker(job))
    return 0


# ----------------------------------------------------------------------------- the processes


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
    if args.end_silence_ms is not None:
        env["END_SILENCE_MS"] = str(args.end_silence_ms)
    if args.early_turn_ms is not None:
        env["EARLY_TURN_MS"] = str(args.early_turn_ms)
    if getattr(args, "frames_per_message", None) is not None:
        env["MEDIA_FRAMES_PER_MESSAGE"] = str(args.frames_per_message)
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


async def run_workers(stack: Stack, jobs: list[dict], on_sample=None, every: float = 1.0, timeout: float = 600.0):
    """Run the caller processes; sample /proc every ``every`` s. Returns (summaries, samples)."""
    procs = []
    for job in jobs:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.calls", "--worker", cwd=REPO, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=open(stack.tmp / "callers.log", "ab"), limit=1 << 24,
        )
        p.stdin.write(json.dumps(job).encode())
        p.stdin.close()
        procs.append(p)
    results: list[dict] = []

    async def read(p) -> None:
        async for line in p.stdout:
            results.append(json.loads(line))
        await p.wait()

    readers = asyncio.gather(*(read(p) for p in procs))
    pids = {"server": stack.server.pid, "fakes": stack.fakes.pid}
    samples = []
    callers_cpu = {p.pid: 0.0 for p in procs}  # last reading of each (an exited process reads nothing)
    t_end = time.monotonic() + timeout
    while True:
        for p in procs:
            c = cpu_s(p.pid)
            if c == c:
                callers_cpu[p.pid] = max(callers_cpu[p.pid], c)
        s = {"t": time.monotonic(), "n_done": len(results), "rss": rss_mb(stack.server.pid),
             **{k: cpu_s(v) for k, v in pids.items()}, "callers": sum(callers_cpu.values())}
        samples.append(s)
        if on_sample is not None:
            await on_sample(s)
        if readers.done():
            break
        if time.monotonic() > t_end:
            for p in procs:
                if p.returncode is None:
                    p.kill()
            break
        await asyncio.wait({readers}, timeout=every)
    await readers
    return results, samples


# ----------------------------------------------------------------------------- one table row


@dataclass
class Row:
    n: int
    loop: str
    calls: list[dict]
    samples: list[dict]
    rss0: float
    m0: dict
    m1: dict
    critical_ms: float
    load: str
    logs: dict = field(default_factory=dict)

    def lat(self) -> list[float]:
        return [t["ms"] for c in self.calls for t in c.get("turns", []) if t.get("ms") is not None]

    def ovh_vad(self, tails: dict[str, float]) -> list[float]:
        """Overhead from the bot's VAD end of speech: latency - critical path - that
        utterance's own VAD tail (how long the VAD still hears speech past the energy end)."""
        return [t["ms"] - self.critical_ms - tails.get(t.get("file", ""), 0.0)
                for c in self.calls for t in c.get("turns", []) if t.get("ms") is not None]


def stage_means(m0: dict, m1: dict) -> dict[str, float]:
    out = {}
    for key, name in (("stt", "phonebot_stt_seconds"), ("llm1", "phonebot_llm_first_token_seconds"),
                      ("tts1", "phonebot_tts_first_byte_seconds"), ("turn", "phonebot_turn_latency_seconds")):
        n = m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
        s = m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)
        out[key] = s / n * 1000 if n else float("nan")
    for outcome in ("used", "cancelled"):
        k = f'phonebot_speculative_turns_total{{outcome="{outcome}"}}'
        out[f"spec_{outcome}"] = m1.get(k, 0) - m0.get(k, 0)
    return out


def critical_path_ms(settings: Settings, p: Profile, live: bool = False) -> tuple[float, str]:
    """The profile's own share of a turn: what no bot could beat with these vendors."""
    if live:  # the live fake sends the final DEEPGRAM_ENDPOINTING_MS after the end of speech
        ep = settings.deepgram_endpointing_ms
        total = ep + first_sentence_s(p) * 1000 + p.tts_first_s * 1000
        return total, (f"live STT: DEEPGRAM_ENDPOINTING_MS {ep} + LLM first sentence {first_sentence_s(p) * 1000:.0f}"
                       f" + TTS {p.tts_first_s * 1000:.0f} = {total:.0f} ms (a speculative LLM start may beat it)")
    work = p.stt_delay_s * 1000 + first_sentence_s(p) * 1000 + p.tts_first_s * 1000
    es, early = settings.end_silence_ms, settings.early_turn_ms
    if 0 < early < es:
        total = max(es, early + work)
        how = (f"max(END_SILENCE_MS {es}, EARLY_TURN_MS {early} + STT {p.stt_delay_s * 1000:.0f} + LLM first sentence "
               f"{first_sentence_s(p) * 1000:.0f} + TTS {p.tts_first_s * 1000:.0f}) = {total:.0f} ms")
    else:
        total = es + work
        how = (f"END_SILENCE_MS {es} + STT {p.stt_delay_s * 1000:.0f} + LLM first sentence {first_sentence_s(p) * 1000:.0f}"
               f" + TTS {p.tts_first_s * 1000:.0f} = {total:.0f} ms")
    return total, how


HEAD = (f"{'loop':7s} {'N':>4s} {'ok/fail':>9s} | {'lat p50':>7s} {'p95':>6s} {'p99':>6s} | {'ovh p50':>7s} {'p95':>6s} {'p99':>6s}"
        f" | {'pace99':>6s} {'drop':>5s} {'gaps':>5s} | {'cpu%':>5s} {'peak':>5s} {'%/call':>6s} {'rss MB':>6s} {'MB/call':>7s} | {'talk-over':>9s}")
HEAD2 = (f"{'loop':7s} {'N':>4s} | {'srv stt':>7s} {'llm1':>5s} {'tts1':>5s} {'turn':>5s} {'spec u/c':>9s} | "
         f"{'vovh p50':>8s} {'p95':>5s} | "
         f"{'callers%':>8s} {'fakes%':>6s} {'lag max':>7s} {'lag>20':>6s} | {'load 1/5/15':>14s} | bot warnings/errors")


VAD_TAILS: dict[str, float] = {}  # per caller file, set by main()


def fmt_row(r: Row) -> tuple[str, str]:
    lat = r.lat()
    ok = sum(1 for c in r.calls if c.get("ok"))
    fail = len(r.calls) - ok
    ovh = [x - r.critical_ms for x in lat]
    pace = [x for c in r.calls for x in c.get("pace", [])]
    drop = sum(c.get("dropped", 0) for c in r.calls)
    gaps = sum(c.get("underruns", 0) for c in r.calls)
    s0, s1 = r.samples[0], r.samples[-1]
    wall = s1["t"] - s0["t"]
    cpu = (s1["server"] - s0["server"]) / wall * 100 if wall > 0 else float("nan")
    peak = max(((b["server"] - a["server"]) / (b["t"] - a["t"]) * 100 for a, b in itertools.pairwise(r.samples) if b["t"] > a["t"]), default=cpu)
    call_s = sum(c["t1"] - c["t0"] for c in r.calls if "t0" in c)
    per_call = (s1["server"] - s0["server"]) / call_s * 100 if call_s else float("nan")
    rss_peak = max(s["rss"] for s in r.samples)
    callers = (s1["callers"] - s0["callers"]) / wall * 100 if wall > 0 else float("nan")
    fakes = (s1["fakes"] - s0["fakes"]) / wall * 100 if wall > 0 else float("nan")
    st = stage_means(r.m0, r.m1)
    lag = max((c.get("lag_max", 0) for c in r.calls), default=0)
    lag20 = sum(c.get("lag_n20", 0) for c in r.calls)
    line1 = (f"{r.loop:7s} {r.n:4d} {ok:>4d}/{fail:<4d} | {pct(lat, 50):7.0f} {pct(lat, 95):6.0f} {pct(lat, 99):6.0f} | "
             f"{pct(ovh, 50):7.0f} {pct(ovh, 95):6.0f} {pct(ovh, 99):6.0f} | {pct(pace, 99):6.1f} {drop:5d} {gaps:5d} | "
             f"{cpu:5.1f} {peak:5.0f} {per_call:6.2f} {rss_peak:6.0f} {(rss_peak - r.rss0) / r.n:7.2f}")
    warn = ", ".join(f"{k} x{v}" for k, v in sorted(r.logs.items(), key=lambda kv: -kv[1])[:4]) or "-"
    vovh = r.ovh_vad(VAD_TAILS)
    turns = [t for c in r.calls for t in c.get("turns", [])]
    over = sum(1 for t in turns if t.get("over"))
    line1 += f" | {over:>4d}/{len(turns):<4d}"
    line2 = (f"{r.loop:7s} {r.n:4d} | {st['stt']:7.0f} {st['llm1']:5.0f} {st['tts1']:5.0f} {st['turn']:5.0f} "
             f"{int(st['spec_used']):>4d}/{int(st['spec_cancelled']):<4d} | {pct(vovh, 50):8.0f} {pct(vovh, 95):5.0f} | {callers:8.0f} {fakes:6.0f} {lag:7.0f} {lag20:6d} | "
             f"{r.load:>14s} | {warn}")
    return line1, line2


def failures(calls: list[dict]) -> str:
    reasons: dict[str, int] = {}
    for c in calls:
        if c.get("ok"):
            continue
        if c.get("error") or c.get("rejected"):
            why = c.get("error") or "rejected"
        elif c.get("hung_up"):
            why = "the bot ended the call" + ("" if c.get("goodbye") else " without a goodbye heard")
        elif c.get("fallbacks"):
            why = "fallback prompt (a stage failed)"
        elif c.get("greeting_ms") is None:
            why = "no greeting"
        else:
            why = "a turn got no reply"
        reasons[why[:70]] = reasons.get(why[:70], 0) + 1
    return "; ".join(f"{k}: {v}" for k, v in reasons.items())


def split_jobs(base: dict, specs: list[dict], workers: int) -> list[dict]:
    return [{**base, "mode": "calls", "calls": specs[i::workers]} for i in range(workers) if specs[i::workers]]


def auto_workers(n: int, wanted: int) -> int:
    return wanted if wanted > 0 else max(1, min(4, math.ceil(n / 100)))


# ----------------------------------------------------------------------------- modes


def dump(args, mode: str, loop: str, n: int, calls: list[dict]) -> None:
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"mode": mode, "loop": loop, "n": n, "calls": calls}) + "\n")


@contextlib.contextmanager
def workdir(args):
    if args.log_dir:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        yield args.log_dir
    else:
        with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmpd:
            yield tmpd


def header(args, settings: Settings) -> float:
    p = args.profile
    print(calibration())
    crit, how = critical_path_ms(settings, p, getattr(args, "live", False))
    print(f"profile: STT {p.stt_delay_s * 1000:.0f} ms; LLM first token {p.llm_first_s * 1000:.0f} ms then {p.llm_tokens_per_s:g} tokens/s; "
          f"TTS first byte {p.tts_first_s * 1000:.0f} ms then {p.tts_chunk_bytes} B every {p.tts_chunk_delay_s * 1000:.0f} ms")
    print(f"reply: {p.reply!r} ({args.reply_frames} frames of audio)")
    print(f"critical path: {how}")
    print(f"  END_SILENCE_MS={settings.end_silence_ms} is {settings.end_silence_ms / crit * 100:.0f}% of it; "
          f"the bot's VAD hears each utterance's tail {args.vad_tail_ms:.0f} ms (mean) past the simulator's end of speech")
    if args.pauses:
        c = args.completeness or ("true" if settings.turn_completeness else "false")
        print(f"callers pause 300-600 ms mid-sentence (examples/callers_pauses; the fake STT hears which words); "
              f"TURN_COMPLETENESS={c} TURN_COMPLETE_MS={args.complete_ms if args.complete_ms is not None else settings.turn_complete_ms}")
    print(f"machine: {os.cpu_count()} cores; load average at start {loadavg()}")
    return crit


async def table(args, settings: Settings, loops: list[str]) -> None:
    crit = header(args, settings)
    rng = random.Random(args.seed)
    rows = []
    for loop in loops:
        with workdir(args) as tmpd:
            stack = await start_stack(args, loop, Path(tmpd), EMBEDDED_ENV if args.embedded else None)
            try:
                for n in args.ns:
                    specs = [script(rng, args.pool, args.turns, round(i * args.ramp_s / max(1, n), 3)) for i in range(n)]
                    if args.burst:  # the same words in every call: each round's N turn ends fall within ~ramp_s
                        specs = [dict(specs[0], delay_s=sp["delay_s"]) for sp in specs]
                    base = {"url": stack.url, "token": stack.token, "uvloop": args.caller_uvloop,
                            "greeting_frames": args.greeting_frames, "reply_frames": args.reply_frames}
                    await asyncio.sleep(1.0)
                    rss0, m0, load = rss_mb(stack.server.pid), await scrape(stack.url), loadavg()
                    prof = None
                    if args.profile_cmd:
                        prof = await asyncio.create_subprocess_shell(
                            args.profile_cmd.format(pid=stack.server.pid, n=n, loop=loop, bench=os.getpid()), stdout=asyncio.subprocess.DEVNULL,
                            stderr=asyncio.subprocess.DEVNULL)
                    calls, samples = await run_workers(stack, split_jobs(base, specs, auto_workers(n, args.workers)))
                    if prof is not None:
                        await prof.wait()
                    check_alive(stack)
                    await asyncio.sleep(0.5)
                    row = Row(n, loop, calls, samples, rss0, m0, await scrape(stack.url), crit, load, log_counts(stack))
                    rows.append(row)
                    dump(args, "table", loop, n, calls)
                    l1, l2 = fmt_row(row)
                    print(l1 if len(rows) > 1 else HEAD + "\n" + l1, flush=True)
                    if failures(calls):
                        print(f"        failures: {failures(calls)}", flush=True)
            finally:
                await stop(stack.server)
                await stop(stack.fakes)
    print("\n" + calibration() + "\n" + HEAD2)
    for r in rows:
        print(fmt_row(r)[1])


async def soak(args, settings: Settings, loops: list[str]) -> None:
    crit = header(args, settings)
    n, seconds = args.soak, args.seconds
    for loop in loops:
        with workdir(args) as tmpd:
            stack = await start_stack(args, loop, Path(tmpd))
            try:
                workers = auto_workers(n, args.workers)
                base = {"url": stack.url, "token": stack.token, "uvloop": args.caller_uvloop, "greeting_frames": args.greeting_frames,
                        "reply_frames": args.reply_frames, "mode": "soak", "seconds": seconds, "pool": args.pool,
                        "turns": args.turns, "ramp_s": 5.0}
                jobs = [{**base, "concurrency": n // workers + (1 if i < n % workers else 0), "seed": args.seed + i} for i in range(workers)]
                await asyncio.sleep(1.0)
                rss0, m0, load = rss_mb(stack.server.pid), await scrape(stack.url), loadavg()
                series: list[tuple[float, float, int]] = []
                t0 = time.monotonic()

                async def every5(s: dict) -> None:  # only called inside this iteration's run_workers
                    if not series or s["t"] - t0 >= len(series) * 5:  # noqa: B023 (used before the loop moves on)
                        series.append((s["t"] - t0, s["rss"], s["n_done"]))  # noqa: B023 (used before the loop moves on)

                print(f"soak ({loop}): {n} concurrent calls for {seconds:g} s (each call: greeting + {args.turns} turns, then a new call);"
                      f" bot RSS before: {rss0:.0f} MB", flush=True)
                calls, samples = await run_workers(stack, jobs, on_sample=every5, timeout=seconds + 120)
                check_alive(stack)
                row = Row(n, loop, calls, samples, rss0, m0, await scrape(stack.url), crit, load, log_counts(stack))
                dump(args, "soak", loop, n, calls)
                print("  t (s)  RSS MB  calls done")
                for t, rss, done in series:
                    print(f"  {t:5.0f}  {rss:6.0f}  {done:10d}")
                steady = [rss for t, rss, _ in series if 15 <= t <= seconds]
                if len(steady) >= 2:
                    print(f"  RSS from t=15 s to {seconds:g} s: {steady[0]:.0f} -> {steady[-1]:.0f} MB "
                          f"({(steady[-1] - steady[0]) / max(1, (len(steady) - 1) * 5) * 60:+.1f} MB/min)")
                print(f"  calls placed {len(calls)}; bot audio frames dropped {sum(c.get('dropped', 0) for c in calls)}; "
                      f"audible gaps {sum(c.get('underruns', 0) for c in calls)}")
                l1, l2 = fmt_row(row)
                print(calibration() + "\n" + HEAD.replace("   N", "conc") + "\n" + l1 + "\n" + HEAD2 + "\n" + l2)
                if failures(calls):
                    print(f"  failures: {failures(calls)}")
            finally:
                await stop(stack.server)
                await stop(stack.fakes)


async def drain(args, settings: Settings, loops: list[str]) -> None:
    import aiohttp
    from twilio.request_validator import RequestValidator

    n = args.drain
    drain_s = args.drain_seconds if args.drain_seconds is not None else settings.drain_seconds
    for loop in loops:
        with workdir(args) as tmpd:
            stack = await start_stack(args, loop, Path(tmpd), {"DRAIN_SECONDS": str(drain_s)})
            try:
                rng = random.Random(args.seed)
                turns = max(args.turns, math.ceil(drain_s / 8) + 3)  # long enough to still be talking at the deadline
                pool = args.pool * (1 + turns // len(args.pool))
                specs = [script(rng, pool, turns, round(i * 1.0 / n, 3)) for i in range(n)]
                base = {"url": stack.url, "token": stack.token, "uvloop": args.caller_uvloop,
                        "greeting_frames": args.greeting_frames, "reply_frames": args.reply_frames}
                callers = asyncio.create_task(run_workers(stack, split_jobs(base, specs, auto_workers(n, args.workers)), timeout=drain_s + 240))
                async with aiohttp.ClientSession() as http:
                    for _ in range(200):
                        async with http.get(stack.url + "/readyz") as r:
                            if (await r.json())["live_calls"] >= n:
                                break
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(args.drain_after_s)
                    async with http.get(stack.url + "/readyz") as r:
                        live = (await r.json())["live_calls"]
                    t_term = time.monotonic()
                    stack.server.send_signal(signal.SIGTERM)
                    await asyncio.sleep(1.0)
                    params = {"CallSid": "CA" + secrets.token_hex(16), "From": "+15550001234", "To": "+15550004321"}
                    sig = RequestValidator(stack.token).compute_signature(stack.url + "/twilio/voice", params)
                    async with http.post(stack.url + "/twilio/voice", data=params, headers={"X-Twilio-Signature": sig}) as r:
                        twiml = await r.text()
                    refused = r.status == 200 and "<Connect>" not in twiml
                    async with http.get(stack.url + "/readyz") as r:
                        not_ready = r.status == 503 and "draining" in (await r.json())["problems"]
                try:
                    code = await asyncio.wait_for(stack.server.wait(), drain_s + 30)
                except TimeoutError:
                    code = None
                t_exit = time.monotonic() - t_term
                calls, _ = await callers
                dump(args, "drain", loop, n, calls)
                clean = [c for c in calls if c.get("hung_up") and c.get("goodbye")]
                done = [c for c in calls if c.get("ok")]
                goodbye, finished = len(clean), len(done)
                cut = len(calls) - goodbye - finished
                others = [c for c in calls if c not in clean and c not in done]
                print(f"drain ({loop}): {n} calls placed, {live} live at SIGTERM ({args.drain_after_s:g} s after all were up), DRAIN_SECONDS={drain_s:g}")
                print(f"  ended cleanly by the drain (goodbye heard, stream closed by the bot): {goodbye}")
                print(f"  finished their own script before the deadline: {finished}")
                print(f"  cut off without a goodbye, or failed: {cut}" + (f"  ({failures(others)})" if cut else ""))
                print(f"  new call during the drain refused with the busy answer: {'yes' if refused else 'NO'}; /readyz 503 draining: {'yes' if not_ready else 'NO'}")
                print(f"  SIGTERM -> process exit: {t_exit:.1f} s (DRAIN_SECONDS {drain_s:g}; exit code {code})")
                print(f"  bot warnings/errors: {log_counts(stack) or '-'}")
            finally:
                await stop(stack.server)
                await stop(stack.fakes)


# ----------------------------------------------------------------------------- main


def vad_tails_ms(files: list[str], settings: Settings) -> dict[str, float]:
    """How far past the simulator's end of speech (an energy threshold) the bot's VAD
    still hears speech, per utterance: a constant of each file, in every turn."""
    from bot.simulator import load_ulaw, speech_end_frame
    from media import frames
    from media.vad import TurnDetector, TurnEvent, Vad

    tails: dict[str, float] = {}
    for f in files:
        u = load_ulaw(f)
        fr = frames.split(u) + [bytes([0xFF]) * 160] * (settings.end_silence_ms // 20 + 5)
        vad, td = Vad(settings.vad_aggressiveness), TurnDetector(end_silence_ms=settings.end_silence_ms, min_speech_ms=settings.min_speech_ms,
                                                                  start_ms=settings.barge_in_ms)
        for i, x in enumerate(fr):
            if td.feed(x, vad.is_speech_ulaw(x)) is TurnEvent.TURN_END:
                tails[f] = float((i + 1 - settings.end_silence_ms // 20 - speech_end_frame(u)) * 20)
                break
    return tails


def caller_pool(pauses: bool) -> list[str]:
    """The caller utterances: the shared corpus (less the 7 s ones), or with --pauses
    the samples with mid-sentence pauses (all of them)."""
    folder = PAUSES if pauses else AUDIO
    manifest = json.loads((folder / "manifest.json").read_text())
    return [str(folder / m["file"]) for m in manifest if pauses or not m["file"].startswith(SKIP)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main()
    ap = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1,50,100,300", help="comma-separated numbers of simultaneous calls")
    ap.add_argument("--quick", action="store_true", help="a short run: N = 1, 20, one turn per call")
    ap.add_argument("--live", action="store_true", help="Deepgram's live socket (STT_STREAMING=true) instead of the batch API")
    ap.add_argument("--speculative-llm", choices=("true", "false"), default=None, help="the bot's SPECULATIVE_LLM (live STT)")
    ap.add_argument("--embedded", action="store_true",
                    help="the bot on its embedded default (whisper, receptionist, piper) instead of the profiled fakes; "
                         "N defaults to 1; the ovh/drop columns assume the fakes' profile and do not apply")
    ap.add_argument("--soak", type=int, default=0, help="soak mode: this many concurrent calls for --seconds")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--drain", type=int, default=0, help="drain mode: this many live calls, then SIGTERM the bot")
    ap.add_argument("--drain-seconds", type=float, default=None, help="the bot's DRAIN_SECONDS (default: its own default)")
    ap.add_argument("--drain-after-s", type=float, default=3.0, help="SIGTERM this long after all calls are up")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop", "both"), default="auto",
                    help="the bot's event loop; auto = what python -m bot does (uvloop when installed)")
    ap.add_argument("--turns", type=int, default=2, help="caller utterances per call (after the greeting)")
    ap.add_argument("--pauses", action="store_true",
                    help="callers speak the utterances with 300-600 ms mid-sentence pauses (examples/callers_pauses)")
    ap.add_argument("--completeness", choices=("true", "false"), default=None,
                    help="the bot's TURN_COMPLETENESS (default: its own default); with --pauses the fake STT hears the words")
    ap.add_argument("--complete-ms", type=int, default=None, help="the bot's TURN_COMPLETE_MS (default: its own default)")
    ap.add_argument("--end-silence-ms", type=int, default=None, help="the bot's END_SILENCE_MS (default: its own default)")
    ap.add_argument("--early-turn-ms", type=int, default=None, help="the bot's EARLY_TURN_MS (default: its own default)")
    ap.add_argument("--ramp-s", type=float, default=2.0, help="calls start spread evenly over this many seconds")
    ap.add_argument("--frames-per-message", type=int, default=None, help="the bot's MEDIA_FRAMES_PER_MESSAGE (20 ms frames per media message)")
    ap.add_argument("--bot-workers", type=int, default=1, help="the bot's WORKERS (processes on one port); CPU and RSS are summed over them")
    ap.add_argument("--burst", action="store_true",
                    help="every call says the same utterances with the same gaps, so with --ramp-s 1 each round's N turn "
                         "ends fall within about a second (compare p95 with N=1)")
    ap.add_argument("--workers", type=int, default=0, help="caller processes (0 = one per 100 calls, at most 4)")
    ap.add_argument("--caller-asyncio", action="store_true", help="callers on plain asyncio even if uvloop is installed")
    d = Profile()
    ap.add_argument("--stt-delay", type=float, default=d.stt_delay_s, help="fake Deepgram: request -> transcript, s")
    ap.add_argument("--llm-first", type=float, default=d.llm_first_s, help="fake OpenAI: request -> first token, s")
    ap.add_argument("--llm-tps", type=float, default=d.llm_tokens_per_s, help="fake OpenAI: tokens per second after it")
    ap.add_argument("--tts-first", type=float, default=d.tts_first_s, help="fake ElevenLabs: request -> first audio, s")
    ap.add_argument("--tts-chunk-delay", type=float, default=d.tts_chunk_delay_s, help="fake ElevenLabs: s between 200 ms chunks")
    ap.add_argument("--reply", default=d.reply, help="what the fake LLM answers to every turn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="append every call's numbers here, one JSON line per table row")
    ap.add_argument("--log-dir", default=None, help="keep the bot's, fakes' and callers' logs here (default: a temp dir, removed)")
    ap.add_argument("--profile-cmd", default=None,
                    help="run this on the bot's pid during each row, e.g. 'py-spy record -d 20 -o /tmp/p{n}.txt -f raw -p {pid}'")
    args = ap.parse_args(argv)

    args.ns = [int(x) for x in args.n.split(",") if x.strip()]
    if args.quick:
        args.ns, args.turns = [1, 20], 1
    if args.embedded and args.n == ap.get_default("n"):
        args.ns = [1]
    args.profile = Profile(stt_delay_s=args.stt_delay, llm_first_s=args.llm_first, llm_tokens_per_s=args.llm_tps,
                           tts_first_s=args.tts_first, tts_chunk_delay_s=args.tts_chunk_delay, reply=args.reply)
    args.reply_frames = reply_audio_frames(args.profile)
    args.greeting_frames = math.ceil(8 * max(200, args.profile.tts_ms_per_char * len(DEFAULT_GREETING)) / 160)
    args.pool = caller_pool(args.pauses)
    args.caller_uvloop = has_uvloop() and not args.caller_asyncio
    env = {"TWILIO_VALIDATE": "false"}
    if args.end_silence_ms is not None:
        env["END_SILENCE_MS"] = str(args.end_silence_ms)
    if args.early_turn_ms is not None:
        env["EARLY_TURN_MS"] = str(args.early_turn_ms)
    if getattr(args, "frames_per_message", None) is not None:
        env["MEDIA_FRAMES_PER_MESSAGE"] = str(args.frames_per_message)
    settings = Settings.from_env(env)
    args.vad_tails = vad_tails_ms(args.pool, settings)
    VAD_TAILS.update(args.vad_tails)
    args.vad_tail_ms = float(np.mean(list(args.vad_tails.values()))) if args.vad_tails else float("nan")
    if args.loop == "both":
        loops = ["asyncio", "uvloop"] if has_uvloop() else ["asyncio"]
    elif args.loop == "auto":
        loops = ["uvloop" if has_uvloop() else "asyncio"]
    else:
        loops = [args.loop]
    if "uvloop" in loops and not has_uvloop():
        print("uvloop is not installed (uv sync --extra fast)", file=sys.stderr)
        return 2
    if args.drain:
        asyncio.run(drain(args, settings, loops))
    elif args.soak:
        asyncio.run(soak(args, settings, loops))
    else:
        asyncio.run(table(args, settings, loops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
