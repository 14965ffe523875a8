"""The three runs: a table of rows (N calls at once, for each N), a soak (N calls kept up
for a while: RSS over time), and a drain (SIGTERM with N live calls)."""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import signal
import time
from pathlib import Path

from bench.calls.callers import auto_workers, run_workers, script, split_jobs
from bench.calls.measure import calibration, loadavg, rss_mb
from bench.calls.report import HEAD, HEAD2, Row, dump, failures, fmt_row, header
from bench.calls.stack import EMBEDDED_ENV, check_alive, log_counts, scrape, start_stack, stop, workdir
from bot.settings import Settings


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
