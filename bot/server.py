"""Serving with a drain: on SIGTERM/SIGINT the process stops taking calls
(readiness fails, new webhooks get the polite busy answer), lets live calls
finish, and exits within DRAIN_SECONDS (Heroku allows 30)."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bot.edge import AcceptErrorThrottle
from bot.logs import kv
from bot.run_call import CALLS, DRAINING
from bot.settings import Settings

log = logging.getLogger("bot.server")

GOODBYE_S = 3.0  # the goodbye prompt at the drain deadline
CLEANUP_S = 1.5  # closing the runner (its shutdown timeout) and the providers


async def drain(app: web.Application, seconds: float) -> int:
    """Refuse new calls, wait for live ones to end; at the deadline, say goodbye to
    those still up. Returns how many calls were still live at the deadline."""
    app[DRAINING]["on"] = True
    # keep GOODBYE_S to say goodbye and CLEANUP_S to close sockets and providers
    deadline = time.monotonic() + max(0.0, seconds - GOODBYE_S - CLEANUP_S)
    log.warning("draining", extra=kv(live_calls=len(app[CALLS]), seconds=seconds))
    while app[CALLS] and time.monotonic() < deadline:  # noqa: ASYNC110 - the calls dict has no event; 5 Hz while draining
        await asyncio.sleep(0.2)
    left = list(app[CALLS].values())
    for session in left:
        session.end_now("goodbye")
    end = time.monotonic() + GOODBYE_S
    while app[CALLS] and time.monotonic() < end:  # noqa: ASYNC110 - as above
        await asyncio.sleep(0.1)
    log.warning("drained", extra=kv(ended_at_deadline=len(left), still_live=len(app[CALLS])))
    return len(left)


async def setup_runner(settings: Settings, app: web.Application) -> web.AppRunner:
    """aiohttp's runner with the edge's deadlines (bot.edge): an idle kept-alive socket
    closes after KEEPALIVE_TIMEOUT_S, a client that stops reading is not waited for
    more than 2 s once its response is out, and the app's ConnectionGuard sees every
    connection."""
    from handlers.state import EDGE

    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=1.0,
        keepalive_timeout=settings.keepalive_timeout_s, lingering_time=2.0,
    )
    await runner.setup()
    assert runner.server is not None
    app[EDGE].attach(runner.server)
    return runner


class StartupError(RuntimeError):
    """The server cannot start; the message says why in one line (no traceback)."""


def prepare_data_dir(path: Path) -> None:
    """DATA_DIR exists and is writable, or a StartupError says so."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StartupError(f"DATA_DIR={path} is not a writable directory ({exc.strerror}); set DATA_DIR to one that is") from None


def bind(host: str, port: int, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """The listening socket, bound before anything slow is imported or loaded: a
    platform that waits for the port sees it at once (connections queue until the app
    answers them), and a port in use is a one-line StartupError.

    ``reuse_port``: a worker under bot.supervisor; every worker binds its own socket with
    SO_REUSEPORT and the kernel spreads connections over them. ``listen=False``: the
    supervisor's check that the port is free (bound without SO_REUSEPORT, then closed)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise StartupError("WORKERS > 1 needs SO_REUSEPORT, which this platform lacks; set WORKERS=1")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"HOST={host}: cannot listen there ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        if listen:
            sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "is already in use (another server running? set PORT)" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise StartupError(f"port {port} on {host} {why}") from None
    return sock


async def serve(settings: Settings, app: web.Application, sock: socket.socket | None = None) -> None:
    """Listen first (``/livez`` answers at once), then wait for the start-up task
    (models, prompts: see handlers/startup.py) and serve until SIGTERM/SIGINT."""
    from handlers.startup import STARTUP
    from handlers.state import EDGE

    prepare_data_dir(settings.data_dir)
    sock = sock or bind(settings.host, settings.port)
    loop = asyncio.get_running_loop()
    AcceptErrorThrottle().install(loop)
    guard = app[EDGE]
    runner = await setup_runner(settings, app)
    await web.SockSite(runner, sock).start()
    log.info("listening", extra=kv(host=settings.host, port=settings.port, max_connections=guard.cap))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    startup = app[STARTUP]
    loading = startup.task
    assert loading is not None, "create_app(..., background_startup=True) starts the loading task"
    stopping = loop.create_task(stop.wait())
    try:
        await asyncio.wait({stopping, loading}, return_when=asyncio.FIRST_COMPLETED)
        if loading.done() and not loading.cancelled() and loading.exception() is not None:
            raise StartupError(str(loading.exception()))
        if startup.ready:
            # Models and prompts are loaded: move everything alive now out of the collector's
            # sight, so a full collection during calls walks only call objects (it was the
            # cause of 40-85 ms event-loop stalls, heard as gaps in the bot's audio).
            gc.collect()
            gc.freeze()
        await stopping
        await drain(app, settings.drain_seconds)
    finally:
        guard.close()
        stopping.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("stopped")
