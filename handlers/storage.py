"""The store and the outbox deliverer as an app resource (cleanup_ctx).

The store opens (and migrates) before the server takes calls and closes after the
last call is recorded; the deliverer runs beside it for the server's whole life.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web

from bot.logs import kv
from bot.store import open_store
from bot.store.deliver import Deliverer
from bot.store.notify import NotifyConfig
from handlers.state import SETTINGS

log = logging.getLogger("handlers.storage")

STORE = web.AppKey("store", object)  # bot.store.SqlStore (a bot.store.api.Store)
NOTIFY = web.AppKey("notify", NotifyConfig)  # who is told; the business profile maps to it


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await open_store(settings, app[NOTIFY])
    app[STORE] = store
    log.info("store ready", extra=kv(backend=store.dialect, targets=len(app[NOTIFY].targets), urgent_targets=len(app[NOTIFY].urgent_targets)))
    deliverer = Deliverer(store, settings)
    task = asyncio.get_running_loop().create_task(deliverer.run(), name="outbox-deliverer")
    yield
    task.cancel()
    await asyncio.wait({task}, timeout=5.0)
    await store.close()
