"""Serving with a drain: on SIGTERM/SIGINT the process stops taking calls
(readiness fails, new webhooks get the polite busy answer), lets live calls
finish, and exits within DRAIN_SECONDS (Heroku allows 30)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time

from aiohttp import web

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
    while app[CALLS] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    left = list(app[CALLS].values())
    for session in left:
        session.end_now("goodbye")
    end = time.monotonic() + GOODBYE_S
    while app[CALLS] and time.monotonic() < end:
        await asyncio.sleep(0.1)
    log.warning("drained", extra=kv(ended_at_deadline=len(left), still_live=len(app[CALLS])))
    return len(left)


async def serve(settings: Settings, app: web.Application) -> None:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    # Models and prompts are loaded: move everything alive now out of the collector's
    # sight, so a full collection during calls walks only call objects (it was the
    # cause of 40-85 ms event-loop stalls, heard as gaps in the bot's audio).
    gc.collect()
    gc.freeze()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("listening", extra=kv(host=settings.host, port=settings.port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        await drain(app, settings.drain_seconds)
    finally:
        await runner.cleanup()
        log.info("stopped")
