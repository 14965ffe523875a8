"""WORKERS > 1: one supervisor, N worker processes on one port, one server to the outside.

Each worker is ``python -m bot serve --worker I --fd F``: the single server, with its own
event loop and models. What makes them one server:

- **Connections only to ready workers.** The supervisor opens the port's sockets itself:
  one SO_REUSEPORT socket of its own and one per worker, inherited by the worker. A
  BPF program on the reuseport group sends each new connection to a random *ready*
  worker, or to the supervisor's socket while none is (bot/shell/steering.py); there the
  supervisor answers ``/livez``, a 503 ``/readyz`` and the busy message
  (bot/shell/standin.py). A worker starts serving its socket only once its models are loaded
  and says so in the instance's shared state; a worker that dies is steered around at
  once, and its restart's loading period gets no calls. No socket closes while the
  supervisor runs, so no queued connection is reset at a hand-over.
- **Shared state.** The workers share the instance's SQLite file in a fresh private
  directory (bot/instance.py: call slots for MAX_CALLS, the wrong-key buckets, which
  workers are ready) and, without TWILIO_AUTH_TOKEN, one random stream-token key made
  here (PHONEBOT_STREAM_SECRET, never logged). ``/readyz`` is 200 only when every worker
  is ready. ``/metrics`` on any worker sums them all (PROMETHEUS_MULTIPROC_DIR).
- **Restarts and drain.** A worker that dies is restarted (waiting longer after each
  quick death); its calls and reservations are released. On SIGTERM/SIGINT every worker
  drains within DRAIN_SECONDS; a normal stop logs at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.instance import InstanceState
from bot.logs import kv
from bot.settings import Settings
from bot.shell.standin import StandIn

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
    sock: socket.socket
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float = 0.0  # when a dead worker is started again
    ready: bool = False
    exit_code: int | None = None  # set the moment it exits (its watcher task)

    @property
    def slot(self) -> int:
        """Its socket's place in the reuseport group (the supervisor's is 0)."""
        return self.index + 1


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it if the supervisor dies, so a killed
    supervisor does not leave workers serving alone. Best effort elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, settings: Settings, count: int, socks: list[socket.socket], argv: list[str] | None = None) -> None:
        """``socks``: the reuseport group, the supervisor's first, then one per worker."""
        from bot.shell.steering import steer

        self.settings, self.count = settings, count
        self.own, worker_socks = socks[0], socks[1:]
        self.argv = argv or [sys.executable, "-m", "bot", "serve"]
        self.workers = [Worker(i, s) for i, s in enumerate(worker_socks)]
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="phonebot-metrics-"))
        self.instance_dir = Path(tempfile.mkdtemp(prefix="phonebot-instance-"))  # 0700
        self.instance = InstanceState.open(str(self.instance_dir), worker=-1)
        self.env = dict(
            os.environ, PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir), PHONEBOT_INSTANCE_DIR=str(self.instance_dir),
            PHONEBOT_STREAM_SECRET=secrets.token_hex(32),
        )
        self.stopping = False
        self.standin = StandIn(settings.busy_text, self._status)
        self._steer = steer
        self._steered: list[int] | None = None
        self._watchers: set[asyncio.Task] = set()

    def _status(self) -> str:
        return f"workers {sum(w.ready for w in self.workers)}/{self.count} ready"

    async def _start(self, w: Worker) -> None:
        fd = w.sock.fileno()
        env = dict(self.env, PHONEBOT_WORKER=str(w.index))
        proc = w.proc = await asyncio.create_subprocess_exec(
            *self.argv, "--worker", str(w.index), "--fd", str(fd), env=env, pass_fds=(fd,), preexec_fn=_die_with_parent,
        )
        w.started, w.ready, w.exit_code = time.monotonic(), False, None
        log.info("worker started", extra=kv(worker=w.index, pid=proc.pid))
        self._watchers.add(asyncio.get_running_loop().create_task(self._watch(w, proc)))

    async def _watch(self, w: Worker, proc: asyncio.subprocess.Process) -> None:
        """The moment a worker exits, new connections stop going to it (not at the next poll)."""
        code = await proc.wait()
        if w.proc is proc:
            w.exit_code, w.ready = code, False
            self.instance.worker_gone(w.index)
            self._update()

    def _reaped(self, w: Worker, code: int) -> None:
        """A worker exited: forget its live gauges, plan its restart (it is steered around already)."""
        from prometheus_client import multiprocess

        assert w.proc is not None
        multiprocess.mark_process_dead(w.proc.pid, str(self.metrics_dir))
        lived = time.monotonic() - w.started
        if self.stopping:  # the normal end of a drain
            log.info("worker stopped", extra=kv(worker=w.index, pid=w.proc.pid, code=code, lived_s=round(lived, 1)))
        else:
            w.failures = 0 if lived >= STABLE_S else w.failures + 1
            delay = 0.0 if w.failures == 0 else min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (w.failures - 1))
            w.restart_at = time.monotonic() + delay
            log.warning("worker exited", extra=kv(worker=w.index, pid=w.proc.pid, code=code, lived_s=round(lived, 1), restart_in_s=delay))
        w.proc = None

    def _update(self) -> None:
        """Steer new connections to the ready workers; answer the others' sockets here."""
        ready = self.instance.ready_workers()
        for w in self.workers:
            was = w.ready
            w.ready = w.proc is not None and w.exit_code is None and ready.get(w.index) == w.proc.pid
            if w.ready and not was:
                log.info("worker ready", extra=kv(worker=w.index, pid=w.proc.pid if w.proc else None, ready=self._status()))
        targets = [w.slot for w in self.workers if w.ready]
        if targets != self._steered:
            self._steer(self.own, targets)
            self._steered = targets
        for w in self.workers:
            if w.ready:
                self.standin.stop(w.sock)
            else:
                self.standin.serve(w.sock)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a clean drain, 2 if a worker could not start."""
        try:
            return asyncio.run(self._run())
        finally:
            self.instance.close()
            for w in self.workers:
                w.sock.close()
            self.own.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            shutil.rmtree(self.instance_dir, ignore_errors=True)

    async def _run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        log.info("supervising", extra=kv(workers=self.count, host=self.settings.host, port=self.settings.port))
        self._steer(self.own, [])
        self._steered = []
        self.standin.serve(self.own)
        try:
            for w in self.workers:
                await self._start(w)
            while not self.stopping:
                for w in self.workers:
                    if w.proc is None:
                        if time.monotonic() >= w.restart_at:
                            await self._start(w)
                        continue
                    code = w.exit_code
                    if code is None:
                        continue
                    if code == STARTUP_FAILED and time.monotonic() - w.started < STABLE_S:
                        # its message is already on stderr; N copies of a settings error help nobody
                        log.error("worker could not start; stopping", extra=kv(worker=w.index, code=code))
                        self._reaped(w, code)
                        await self._stop_all()
                        return STARTUP_FAILED
                    self._reaped(w, code)
                self._update()
                await asyncio.sleep(POLL_S)
            await self._stop_all()
            return 0
        finally:
            self.standin.close()
            for task in self._watchers:
                task.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        self.stopping = True

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each drains within DRAIN_SECONDS); kill what outlives that."""
        self.stopping = True
        live = [w for w in self.workers if w.proc is not None]
        log.info("stopping workers", extra=kv(workers=len(live), drain_seconds=self.settings.drain_seconds))
        for w in live:
            assert w.proc is not None
            if w.exit_code is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_seconds + KILL_GRACE_S
        while any(w.proc is not None for w in live):
            for w in live:
                if w.proc is None:
                    continue
                if w.exit_code is None and time.monotonic() >= deadline:
                    log.error("worker did not drain in time; killing", extra=kv(worker=w.index, pid=w.proc.pid))
                    w.proc.kill()
                    w.exit_code = await w.proc.wait()
                if w.exit_code is not None:
                    self._reaped(w, w.exit_code)
            await asyncio.sleep(POLL_S)
        log.info("stopped")
