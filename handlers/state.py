"""Typed application state keys (aiohttp AppKey)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.call_registry import CallRegistry
from bot.edge import ConnectionGuard
from bot.instance import InstanceState
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.prompts import PromptBank
from bot.providers.registry import Providers
from bot.providers.stt_stream import StreamingSTT
from bot.settings import Settings


@dataclass
class Drain:
    """Set once when the server starts draining (bot/shell/server.py): new calls get the busy
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
EDGE = web.AppKey("edge", ConnectionGuard)  # connection phases and deadlines (issue 9)
INSTANCE = web.AppKey("instance", InstanceState)  # what the instance's processes share: call slots, key buckets
CALLS = web.AppKey("calls", CallRegistry)  # this process's live calls: capacity, drain, the console
DRAINING = web.AppKey("draining", Drain)
LIVE_STT: web.AppKey[StreamingSTT | None] = web.AppKey("live_stt")  # None: turns end by local VAD + batch STT

