"""The caller side: processes running bot.simulator (``--worker``, fed a JSON job on
stdin, answering one JSON line per finished call), what each call is summarised into,
and the parent that starts them and samples /proc while they run."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import sys
import time

import numpy as np

from bench.calls.measure import cpu_s, rss_mb
from bench.calls.stack import REPO, Stack

AUDIO = REPO.parent / "shared" / "audio" / "callers"
PAUSES = REPO / "examples" / "callers_pauses"  # utterances with 300-600 ms mid-sentence pauses (--pauses)
LEAD_FRAMES = 3  # the bot's playout sends 60 ms ahead: its first 4 frames go back to back
SKIP = ("name_number",)  # 7 s utterances: they only make the run longer


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

    from bot.carriers.twilio.simulator import simulate_call

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


def split_jobs(base: dict, specs: list[dict], workers: int) -> list[dict]:
    return [{**base, "mode": "calls", "calls": specs[i::workers]} for i in range(workers) if specs[i::workers]]


def auto_workers(n: int, wanted: int) -> int:
    return wanted if wanted > 0 else max(1, min(4, math.ceil(n / 100)))


def caller_pool(pauses: bool) -> list[str]:
    """The caller utterances: the shared corpus (less the 7 s ones), or with --pauses
    the samples with mid-sentence pauses (all of them)."""
    folder = PAUSES if pauses else AUDIO
    manifest = json.loads((folder / "manifest.json").read_text())
    return [str(folder / m["file"]) for m in manifest if pauses or not m["file"].startswith(SKIP)]
