"""WORKERS > 1: one supervisor, N worker processes sharing the port.

Each worker is ``python -m bot serve --worker I``: today's single server, with its own
event loop, models, MAX_CALLS and drain. Each binds the port itself with SO_REUSEPORT
(bot.server.bind), so the kernel spreads new connections evenly over the workers'
own accept queues; one socket inherited by all would let the least busy loop win
every wake-up and pile calls on one core. The price: connections still waiting in a
worker's accept queue when it dies are reset (a restarted worker gets new ones).

The supervisor imports nothing heavy and never serves. It checks the port once (a
port in use is one line, not N), gives the workers a fresh PROMETHEUS_MULTIPROC_DIR
(``/metrics`` in any worker sums them all: bot/metrics.py), restarts a worker that
dies (waiting longer after each quick death), and on SIGTERM/SIGINT passes SIGTERM
on: every worker drains within DRAIN_SECONDS, then the supervisor exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.logs import kv
from bot.settings import Settings

log = logging.getLogger("bot.supervisor")

BACKOFF_FIRST_S = 0.5  # after a worker's first quick death; doubling up to BACKOFF_MAX_S
BACKOFF_MAX_S = 30.0
STABLE_S = 30.0  # a worker that lived this long resets its back-off
STARTUP_FAILED = 2  # a worker's exit code for a start-up failure (bad settings, port): not retried
KILL_GRACE_S = 5.0  # past DRAIN_SECONDS, before stragglers are killed
POLL_S = 0.1


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float = 0.0  # when a dead worker is started again


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it if the supervisor dies, so a killed
    supervisor does not leave workers serving alone. Best effort elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, settings: Settings, count: int, argv: list[str] | None = None) -> None:
        self.settings, self.count = settings, count
        self.argv = argv or [sys.executable, "-m", "bot", "serve"]
        self.workers = [Worker(i) for i in range(count)]
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="phonebot-metrics-"))
        self.env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir))
        self.stopping = False

    def _start(self, w: Worker) -> None:
        w.proc = subprocess.Popen([*self.argv, "--worker", str(w.index)], env=self.env, preexec_fn=_die_with_parent)
        w.started = time.monotonic()
        log.info("worker started", extra=kv(worker=w.index, pid=w.proc.pid))

    def _reaped(self, w: Worker, code: int) -> None:
        """A worker exited: forget its live gauges, plan its restart."""
        from prometheus_client import multiprocess

        assert w.proc is not None
        multiprocess.mark_process_dead(w.proc.pid, str(self.metrics_dir))
        lived = time.monotonic() - w.started
        w.failures = 0 if lived >= STABLE_S else w.failures + 1
        delay = 0.0 if w.failures == 0 else min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (w.failures - 1))
        w.restart_at = time.monotonic() + delay
        log.warning("worker exited", extra=kv(worker=w.index, pid=w.proc.pid, code=code, lived_s=round(lived, 1), restart_in_s=delay))
        w.proc = None

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a clean drain, 2 if a worker could not start."""
        def stop(signum, _frame) -> None:
            self.stopping = True

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        log.info("supervising", extra=kv(workers=self.count, port=self.settings.port, metrics_dir=str(self.metrics_dir)))
        try:
            for w in self.workers:
                self._start(w)
            while not self.stopping:
                for w in self.workers:
                    if w.proc is None:
                        if time.monotonic() >= w.restart_at:
                            self._start(w)
                        continue
                    code = w.proc.poll()
                    if code is None:
                        continue
                    if code == STARTUP_FAILED and time.monotonic() - w.started < STABLE_S:
                        # its message is already on stderr; N copies of a settings error help nobody
                        log.error("worker could not start; stopping", extra=kv(worker=w.index, code=code))
                        self._reaped(w, code)
                        self._stop_all()
                        return STARTUP_FAILED
                    self._reaped(w, code)
                time.sleep(POLL_S)
            self._stop_all()
            return 0
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains within DRAIN_SECONDS); kill what outlives that."""
        live = [w for w in self.workers if w.proc is not None]
        log.warning("stopping workers", extra=kv(workers=len(live), drain_seconds=self.settings.drain_seconds))
        for w in live:
            assert w.proc is not None
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_seconds + KILL_GRACE_S
        for w in live:
            assert w.proc is not None
            try:
                code = w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not drain in time; killing", extra=kv(worker=w.index, pid=w.proc.pid))
                w.proc.kill()
                code = w.proc.wait()
            self._reaped(w, code)
        log.info("stopped")

