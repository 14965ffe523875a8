"""Fire-and-forget work owned by the app (e.g. pool warming): kept referenced while it
runs, errors logged, cancelled at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine

from aiohttp import web

from bot.logs import kv

log = logging.getLogger("handlers")

BACKGROUND = web.AppKey("background", set)


def spawn(app: web.Application, coro: Coroutine, *, name: str) -> None:
    tasks: set = app[BACKGROUND]
    task = asyncio.get_running_loop().create_task(coro, name=name)
    tasks.add(task)
    task.add_done_callback(lambda t: (tasks.discard(t), _report(t)))


def _report(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task failed", extra=kv(task=task.get_name(), error=type(task.exception()).__name__))


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    app[BACKGROUND] = set()
    yield
    tasks = list(app[BACKGROUND])
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
