"""What one call needs from the app: the transport adapters build a ``CallEngine`` for
each call and pass it to ``run_call``, with its call record in the store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.call import CallSession
from bot.control import LocalControl
from bot.run_call import CallEngine
from bot.transport import Transport
from handlers.state import CALLS, LIVE_STT, METRICS, ORCHESTRATOR, PROMPTS, SETTINGS
from handlers.storage import SAVER, STORE, record_end, record_start


def call_engine(app: web.Application) -> CallEngine:
    """What one call needs from the app (the transport adapters build it for each call and
    pass it to run_call), including its call record in the store (handlers/storage.py)."""
    start: asyncio.Task[None] | None = None  # this call's record start, being written (an engine is built per call)

    async def started(t: Transport) -> None:
        nonlocal start
        start = record_start(app, call_sid=t.call_sid, stream_sid=t.stream_sid, caller=t.caller)

    async def ended(t: Transport, session: CallSession | None, failed: bool) -> None:
        await record_end(app, session, call_sid=t.call_sid, failed=failed, after=start)

    return CallEngine(
        settings=app[SETTINGS], orchestrator=app[ORCHESTRATOR], prompts=app[PROMPTS], control=LocalControl(),
        metrics=app[METRICS], calls=app[CALLS], store=app[STORE], saver=app[SAVER], live_stt=app[LIVE_STT],
        record_start=started, record_end=ended,
    )
