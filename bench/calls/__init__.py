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

The modules: measure (/proc, calibration, percentiles), stack (the fakes and the bot),
callers (the caller processes and what each call is summarised into), report (the
table rows, the critical path, failures), modes (table, soak, drain), __main__ (the
command line). Other benches import the names below from ``bench.calls``.
"""

from __future__ import annotations

from bench.calls.callers import (
    AUDIO,
    LEAD_FRAMES,
    PAUSES,
    SKIP,
    auto_workers,
    caller_pool,
    run_workers,
    script,
    speech_onset_ms,
    split_jobs,
    summarize,
    talk_over,
    worker,
    worker_main,
)
from bench.calls.measure import calibration, cpu_s, free_port, loadavg, pct, rss_mb, tree
from bench.calls.modes import drain, soak, table
from bench.calls.report import HEAD, HEAD2, VAD_TAILS, Row, critical_path_ms, dump, failures, fmt_row, header, stage_means, vad_tails_ms
from bench.calls.stack import EMBEDDED_ENV, REPO, Stack, check_alive, has_uvloop, log_counts, scrape, start_stack, stop, timing_env, wait_ready, workdir

__all__ = [
    "AUDIO", "EMBEDDED_ENV", "HEAD", "HEAD2", "LEAD_FRAMES", "PAUSES", "REPO", "SKIP", "VAD_TAILS", "Row", "Stack",
    "auto_workers", "calibration", "caller_pool", "check_alive", "cpu_s", "critical_path_ms", "drain", "dump", "failures",
    "fmt_row", "free_port", "has_uvloop", "header", "loadavg", "log_counts", "pct", "rss_mb", "run_workers", "scrape",
    "script", "soak", "speech_onset_ms", "split_jobs", "stage_means", "start_stack", "stop", "summarize", "table",
    "talk_over", "timing_env", "tree", "vad_tails_ms", "wait_ready", "workdir", "worker", "worker_main",
]
