"""Serving with a drain: on SIGTERM/SIGINT the process stops taking calls
(readiness fails, new webhooks get the polite busy answer), lets live calls
finish, and exits within DRAIN_SECONDS (Heroku allows 30)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from bot.logs import kv
from bot.settings import Settings

log = logging.getLogger("bot.server")


async def drain(app: web.Application, seconds: float) -> int:
    """Refuse new calls, wait for live ones to end; at the deadline, say goodbye to
    those still up. Returns how many calls were still live at the deadline."""
    from handlers.state import CALLS, DRAINING

    app[DRAINING]["on"] = True
    deadline = time.monotonic() + max(0.0, seconds - 3.0)  # keep ~3 s to say goodbye
    log.warning("draining", extra=kv(live_calls=len(app[CALLS]), seconds=seconds))
    while app[CALLS] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    left = list(app[CALLS].values())
    for session in left:
        session.end_now("goodbye")
    end = time.monotonic() + 3.0
    while app[CALLS] and time.monotonic() < end:
        await asyncio.sleep(0.1)
    log.warning("drained", extra=kv(ended_at_deadline=len(left), still_live=len(app[CALLS])))
    return len(left)


async def serve(settings: Settings, app: web.Application) -> None:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
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
