"""Fire-and-forget work owned by the app (e.g. pool warming): kept referenced while it
runs, errors logged, cancelled at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from bot.logs import kv

log = logging.getLogger("handlers")

BACKGROUND: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("background")


def spawn(app: web.Application, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
    tasks = app[BACKGROUND]
    task = asyncio.get_running_loop().create_task(coro, name=name)
    tasks.add(task)
    task.add_done_callback(_finished(tasks))


def _finished(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        _report(task)

    return done


def _report(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task failed", extra=kv(task=task.get_name(), error=type(task.exception()).__name__))


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    app[BACKGROUND] = set()
    yield
    running = app[BACKGROUND]
    tasks = list(running)
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
