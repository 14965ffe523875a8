"""Serving with a drain: on SIGTERM/SIGINT the process stops taking calls
(readiness fails, new webhooks get the polite busy answer), lets live calls
finish, and exits within DRAIN_SECONDS (Heroku allows 30)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket

from aiohttp import web

from bot.edge import AcceptErrorThrottle
from bot.logs import kv
from bot.settings import Settings
from bot.shell.listen import StartupError, bind, prepare_data_dir
from handlers.startup import STARTUP
from handlers.state import CALLS, DRAINING, EDGE, INSTANCE, PROMPTS

__all__ = ["StartupError", "bind", "drain", "prepare_data_dir", "serve", "setup_runner"]

log = logging.getLogger("bot.server")

GOODBYE_SLACK_S = 1.5  # past the goodbye prompt's own length: the mark's echo, a busy loop
CLEANUP_S = 1.5  # closing the runner (its shutdown timeout) and the providers
ACTION_GRACE_S = 0.5  # after the last call of a drain, for its <Connect action> request


def goodbye_s(app: web.Application) -> float:
    """How long the goodbye at the drain deadline needs: the prompt's length, plus slack."""
    audio = app[PROMPTS].get("goodbye") if PROMPTS in app else None
    return (len(audio) / 8000 if audio else 3.0) + GOODBYE_SLACK_S


async def drain(app: web.Application, seconds: float) -> int:
    """Refuse new calls, wait for live ones to end; at the deadline, say goodbye to
    those still up (the whole prompt at once, so a busy loop cannot cut it: see
    Playout.burst) and give it its length to be heard. Returns how many calls were
    still live at the deadline."""
    app[DRAINING].on = True
    had_calls = bool(app[CALLS])
    goodbye = goodbye_s(app)
    # keep the goodbye's time and CLEANUP_S to close sockets and providers
    deadline = asyncio.get_running_loop().time() + max(0.0, seconds - goodbye - CLEANUP_S - ACTION_GRACE_S)
    log.info("draining", extra=kv(live_calls=len(app[CALLS]), seconds=seconds))
    while app[CALLS] and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - the calls dict has no event; 5 Hz while draining
        await asyncio.sleep(0.2)
    left = list(app[CALLS].values())
    for session in left:
        session.end_now("goodbye")
    end = asyncio.get_running_loop().time() + goodbye
    while app[CALLS] and asyncio.get_running_loop().time() < end:  # noqa: ASYNC110 - as above
        await asyncio.sleep(0.1)
    if had_calls:  # Twilio asks each ended stream's <Connect action> right after: still answer it here
        await asyncio.sleep(ACTION_GRACE_S)
    # a drain that cut no call short is a normal stop: not a warning
    still = len(app[CALLS])
    log.log(logging.WARNING if left or still else logging.INFO, "drained", extra=kv(ended_at_deadline=len(left), still_live=still))
    return len(left)


async def setup_runner(settings: Settings, app: web.Application) -> web.AppRunner:
    """aiohttp's runner with the edge's deadlines (bot.edge): an idle kept-alive socket
    closes after KEEPALIVE_TIMEOUT_S, a client that stops reading is not waited for
    more than 2 s once its response is out, and the app's ConnectionGuard sees every
    connection."""
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=1.0,
        keepalive_timeout=settings.keepalive_timeout_s, lingering_time=2.0,
    )
    await runner.setup()
    assert runner.server is not None
    app[EDGE].attach(runner.server)
    return runner


async def serve(settings: Settings, app: web.Application, sock: socket.socket | None = None, *, early: bool = True) -> None:
    """Listen first (``/livez`` answers at once), then wait for the start-up task
    (models, prompts: see handlers/startup.py) and serve until SIGTERM/SIGINT.
    ``early=False`` (a worker under bot.shell.supervisor): serve ``sock`` only once ready, then
    tell the instance (the supervisor steers connections here from then on)."""
    prepare_data_dir(settings.data_dir)
    sock = sock or bind(settings.host, settings.port)
    loop = asyncio.get_running_loop()
    AcceptErrorThrottle().install(loop)
    guard = app[EDGE]
    runner = await setup_runner(settings, app)
    site = web.SockSite(runner, sock)
    if early:
        await site.start()
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
            if not early:
                await site.start()
                app[INSTANCE].worker_ready(settings.worker_index, os.getpid())
                log.info("serving", extra=kv(host=settings.host, port=settings.port, max_connections=guard.cap))
        await stopping
        await drain(app, settings.drain_seconds)
    finally:
        guard.close()
        stopping.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("stopped")
