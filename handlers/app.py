"""create_app(settings): builds everything; resources live in cleanup_ctx."""

from __future__ import annotations

from aiohttp import web

from bot.call_registry import CallRegistry
from bot.carriers import registry as carriers
from bot.edge import ConnectionGuard
from bot.instance import InstanceState
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.profile import cached_profile, prompt_texts
from bot.prompts import PromptBank
from bot.providers import registry
from bot.providers.registry import Providers
from bot.providers.stt_stream import StreamingSTT
from bot.settings import Settings, SettingsError
from bot.store.notify import NotifyConfig, channel_problems
from handlers import console, health, landing, metrics, orchestrate
from handlers.api_gate import api_gate
from handlers.background import background_ctx
from handlers.errors import error_middleware
from handlers.startup import startup_ctx
from handlers.state import CALLS, DRAINING, EDGE, INSTANCE, LIVE_STT, METRICS, ORCHESTRATOR, PROMPTS, PROVIDERS, READY, SETTINGS, Drain
from handlers.storage import NOTIFY, store_ctx
from handlers.web_security import web_security

__all__ = ["create_app", "prompt_texts"]  # prompt_texts: bot/profile.py


def create_app(
    settings: Settings,
    *,
    providers: Providers | None = None,
    embedded_prompt_fallback: bool = True,
    live_stt: StreamingSTT | None | str = "auto",
    background_startup: bool = False,
) -> web.Application:
    """Build the application. Tests pass scripted ``providers``; otherwise they are
    built from ``settings``. ``embedded_prompt_fallback`` lets start-up render the
    prompts with piper when the configured TTS cannot. ``live_stt``: the streaming
    transcriber for calls; "auto": the registry builds the first STT's streaming adapter
    when ``STT_STREAMING`` is on (bot/providers/registry.py). ``background_startup``: load models and render prompts
    after the site is listening (the server does; see handlers/startup.py)."""
    prompt_texts(settings)  # checks the business file now: every problem in one ProfileError
    app = web.Application(client_max_size=settings.max_upload_bytes + 64 * 1024, middlewares=[metrics.metrics_middleware, error_middleware, web_security, api_gate(settings)])
    app[SETTINGS] = settings
    app[INSTANCE] = InstanceState.open(settings.instance_dir, settings.worker_index)
    app.on_cleanup.append(_close_instance)
    app[PROVIDERS] = providers or registry.build(settings)
    app[READY] = {}
    app[CALLS] = CallRegistry()  # internal stream id -> CallSession
    app[DRAINING] = Drain()
    app[PROMPTS] = PromptBank()
    p = app[PROVIDERS]
    app[ORCHESTRATOR] = Orchestrator(
        p.stt, p.llm, p.tts,
        stt_timeout=settings.stt_timeout, llm_timeout=settings.llm_timeout, tts_timeout=settings.tts_timeout,
    )
    app[LIVE_STT] = registry.build_live(settings) if isinstance(live_stt, str) else live_stt
    app.cleanup_ctx.append(background_ctx)
    app[NOTIFY] = _notify(settings)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(startup_ctx(prompt_texts, embedded_prompt_fallback, background_startup))
    app[METRICS] = Metrics()
    health.setup(app)
    orchestrate.setup(app)
    metrics.setup(app)
    app[EDGE] = ConnectionGuard.from_settings(settings)  # wired to the sockets by bot.shell.server
    console.setup(app)
    landing.setup(app)
    carriers.install(app, settings)  # CARRIERS: each adds its routes and listeners (bot/carriers/)
    return app


async def _close_instance(app: web.Application) -> None:
    app[INSTANCE].close()


def _notify(settings: Settings) -> NotifyConfig:
    """Who is told of messages: NOTIFY_TO and the business file's [notify] section."""
    notify = NotifyConfig.from_settings(settings, cached_profile(settings.business_file).notify)
    problems = channel_problems(notify.targets + notify.urgent_targets, settings, "the business file or NOTIFY_TO")
    if problems:  # each would be retried for ever and never arrive
        raise SettingsError("\n".join(problems))
    return notify
