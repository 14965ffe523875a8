"""Typed application state keys (aiohttp AppKey)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from bot.call_registry import CallRegistry
from bot.control import StreamEndControl
from bot.edge import ConnectionGuard
from bot.instance import InstanceState
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.prompts import PromptBank
from bot.providers.registry import Providers
from bot.providers.stt_stream import StreamingSTT
from bot.run_call import CallEngine
from bot.settings import Settings


@dataclass
class Drain:
    """Set once when the server starts draining (bot/server.py): new calls get the busy
    answer and /readyz fails from then on."""

    on: bool = False


# stage ("stt", "llm", "tts") -> its provider started; filled at start-up (handlers/startup.py)
Readiness = dict[str, bool]

SETTINGS = web.AppKey("settings", Settings)
PROVIDERS = web.AppKey("providers", Providers)
ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
PROMPTS = web.AppKey("prompts", PromptBank)
READY: web.AppKey[Readiness] = web.AppKey("ready")
REQUEST_ID = web.RequestKey("request_id", str)

# the phone path
METRICS = web.AppKey("metrics", Metrics)
CONTROL = web.AppKey("control", StreamEndControl)
EDGE = web.AppKey("edge", ConnectionGuard)  # connection phases and deadlines (issue 9)
INSTANCE = web.AppKey("instance", InstanceState)  # what the instance's processes share: call slots, key buckets
CALLS = web.AppKey("calls", CallRegistry)  # this process's live calls: capacity, drain, the console
DRAINING = web.AppKey("draining", Drain)
LIVE_STT: web.AppKey[StreamingSTT | None] = web.AppKey("live_stt")  # None: turns end by local VAD + batch STT


def call_engine(app: web.Application) -> CallEngine:
    """What one call needs from the app (the transport adapters build it for each call and
    pass it to run_call), including its call record in the store (handlers/storage.py)."""
    from handlers.storage import SAVER, STORE, record_end, record_start

    start: asyncio.Task[None] | None = None  # this call's record start, being written (an engine is built per call)

    async def started(t) -> None:
        nonlocal start
        start = record_start(app, call_sid=t.call_sid, stream_sid=t.stream_sid, caller=t.caller)

    async def ended(t, session, failed: bool) -> None:
        await record_end(app, session, call_sid=t.call_sid, failed=failed, after=start)

    return CallEngine(
        settings=app[SETTINGS], orchestrator=app[ORCHESTRATOR], prompts=app[PROMPTS], control=app[CONTROL],
        metrics=app[METRICS], calls=app[CALLS], store=app[STORE], saver=app[SAVER], live_stt=app[LIVE_STT],
        record_start=started, record_end=ended,
    )
