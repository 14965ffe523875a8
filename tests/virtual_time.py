"""Virtual time for whole calls: an event loop that skips its idle waits, so a 30-second
simulated call runs in a fraction of a second.

A test marked ``@pytest.mark.virtual_time`` (or a module with ``pytestmark``) runs on a
``VirtualTimeLoop`` (conftest's ``pytest_asyncio_loop_factories`` picks it). Its clock is
the real monotonic clock plus the idle time it skipped:

* the loop is idle (no callback ready, no socket readable on a zero-timeout poll, no work
  outside the loop in flight): the clock jumps to the earliest timer at once;
* otherwise time passes as on a stock loop: the loop's own work (a callback that blocks
  it, CPU spent on frames) and real waits for work outside the loop all count.

So virtual time never runs faster than real time while anything but a timer is pending: a
budget that would cut real work short in real time cuts it at the same point here, never
earlier, and no test is made weaker by the jump; only waiting for timers is free.

"Work outside the loop" is, conservatively:

* an executor job (``run_in_executor``: whisper, piper, ``getaddrinfo``, ``to_thread``);
* a Python thread that is not parked at a known idle point (a ``ThreadPoolExecutor``
  worker or an aiosqlite connection thread blocked on an empty queue, a thread waiting on a
  condition or an event, a thread's own loop in ``select``); a thread doing anything else
  (sqlite, a model, ``time.sleep``) counts as working;
* a registered file descriptor whose other end is not in this loop: a connected socket
  whose peer address is not a socket this loop also serves or holds, a pipe to a child
  process, an unconnected datagram socket. Sockets between a client and a server that both
  run in this loop (the simulator against ``aiohttp_server``, the SDKs against the wire
  fakes) are internal: a write to a loopback socket is readable on the peer before
  ``send`` returns, so the zero-timeout poll sees it.

Code under test reads durations from ``asyncio.get_running_loop().time()`` (bot/clock.py;
a stock loop's clock is ``time.monotonic``, so outside these tests nothing changes);
``time.monotonic()`` read directly would not see the jumps.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

# While work outside the loop is in flight, wait on the real selector this long at most
# before looking again (the clock moves by the real time waited).
REAL_STEP_S = 0.005
# An idle jump lands this far past the timer it jumps to (see VirtualTimeLoop._jump).
JUMP_PAST_S = 1e-6

_THREADING = threading.__file__
_SELECTORS = selectors.__file__


def _thread_idle(frame: Any) -> bool:
    """Whether a thread whose innermost Python frame is ``frame`` is parked waiting for
    work with none queued. Unknown frames count as working (the safe side: real time)."""
    code = frame.f_code
    name, path = code.co_name, code.co_filename
    if path == _THREADING and name in ("wait", "_wait_for_tstate_lock"):
        caller = frame.f_back
        if caller is not None and caller.f_code.co_name == "get" and caller.f_code.co_filename.endswith("queue.py"):
            q = caller.f_locals.get("self")
            return q is None or not q._qsize()
        return True  # Condition / Event wait, join: waiting on someone else
    if path == _SELECTORS and name == "select":
        return True  # a thread's own event loop, idle; sockets to it are external (below)
    if name == "read" and path.endswith("execnet/gateway_base.py"):
        return True  # pytest-xdist's receiver, blocked on the controller's pipe
    if name == "_worker" and path.endswith("futures/thread.py"):
        return _parked(frame, "work_queue")
    if name == "_connection_worker_thread" and "aiosqlite" in path:
        return _parked(frame, "tx")
    return False


_GET_LINES: dict[Any, int] = {}


def _parked(frame: Any, queue: str) -> bool:
    """A worker frame blocked in ``<queue>.get()`` (a C call: the frame stays on that
    line while it waits) with nothing queued. On any other line it is running a job
    (a C function such as sqlite's shows no frame of its own)."""
    code = frame.f_code
    line = _GET_LINES.get(code)
    if line is None:
        lines, first = inspect.getsourcelines(code)
        line = _GET_LINES[code] = next(first + i for i, text in enumerate(lines) if f"{queue}.get(" in text)
    q = frame.f_locals.get(queue)
    return frame.f_lineno == line and q is not None and q.empty()


def _peer_external(fd: int, local: set) -> bool | None:
    """True if ``fd``'s other end is outside this loop, False if inside, None for a
    listener (its connections are judged one by one)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return True
    if not stat.S_ISSOCK(mode):
        return True  # a pipe or a file: a child process or the disk on the other end
    s = socket.socket(fileno=fd)
    try:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        try:
            peer = s.getpeername()
        except OSError:
            return True  # connecting, or an unconnected datagram socket
        return _key(peer) not in local
    finally:
        s.detach()


def _key(addr: Any) -> Any:
    return tuple(addr[:2]) if isinstance(addr, tuple) else addr


def _local_name(fd: int) -> Any:
    try:
        s = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return _key(s.getsockname())
    except OSError:
        return None
    finally:
        s.detach()


class _JumpingSelector(selectors.BaseSelector):
    """The loop's selector: polls the real one without blocking, and either jumps the
    virtual clock (idle) or waits really (work outside the loop in flight)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._real = selectors.DefaultSelector()
        self._internal = False  # cached: every registered fd's other end is in this loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        self._internal = False
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        self._internal = False
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def external_io(self) -> bool:
        """Whether a registered fd's other end is outside this loop. An all-internal
        verdict is kept until the registrations change; an external one is judged again
        each time (a peer may register later, a connect may complete)."""
        if self._internal:
            return False
        own = self._loop._self_pipe_fds()
        fds = [k.fd for k in self._real.get_map().values() if k.fd not in own]
        local = {n for n in map(_local_name, fds) if n is not None}
        external = any(_peer_external(fd, local) for fd in fds)
        self._internal = not external
        return external

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        loop = self._loop
        if loop.outside_work():  # real time passes while it works
            return self._real.select(REAL_STEP_S if timeout is None else min(timeout, REAL_STEP_S))
        if timeout is None:
            return self._real.select(None)  # nothing scheduled and nothing in flight
        loop._jump(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop on a virtual clock (see the module's docstring)."""

    def __init__(self) -> None:
        self._skipped = 0.0  # idle time jumped over
        self._executor_jobs = 0
        self.jumps = 0  # idle jumps taken (for tests of this loop)
        self.waited: dict[str, int] = {}  # real waits, by what was outside the loop
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return time.monotonic() + self._skipped

    def _jump(self, timeout: float) -> None:
        """Idle: skip to the earliest timer, and a microsecond past it, as a real loop
        wakes a little late (never early: ``t0 + 0.3 - t0`` can be 0.29999999999927 in
        floats, and a budget must never seem to end before its time)."""
        now = self.time()
        due = now + timeout
        if self._scheduled:
            due = max(due, self._scheduled[0].when())
        self._skipped += due - now + JUMP_PAST_S
        self.jumps += 1

    def _self_pipe_fds(self) -> set[int]:
        fds = set()
        for sock in (getattr(self, "_ssock", None), getattr(self, "_csock", None)):
            if sock is not None and sock.fileno() >= 0:
                fds.add(sock.fileno())
        return fds

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        fut = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1

        def done(_: Future | asyncio.Future) -> None:
            self._executor_jobs -= 1

        fut.add_done_callback(done)
        return fut

    def outside_work(self) -> bool:
        """Whether anything outside the loop may still deliver an event (see above)."""
        why = self._outside()
        if why:
            self.waited[why] = self.waited.get(why, 0) + 1
        return bool(why)

    def _outside(self) -> str:
        if self._executor_jobs:
            return "executor"
        me = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            if ident != me and not _thread_idle(frame):
                return f"thread {frame.f_code.co_filename}:{frame.f_code.co_name}"
        return "fd" if self._selector.external_io() else ""  # type: ignore[attr-defined]
