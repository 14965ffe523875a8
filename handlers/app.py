"""create_app(settings): builds everything; resources live in cleanup_ctx."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiohttp import web

from bot.errors import StageError
from bot.logs import kv
from bot.orchestrator import Orchestrator
from bot.prompts import PromptBank, render_prompts
from bot.providers import registry
from bot.providers.registry import Providers
from bot.providers.stt_stream import StreamingSTT
from bot.settings import Settings
from bot.metrics import Metrics
from handlers import health, metrics, orchestrate, phone, twilio
from handlers.background import background_ctx
from handlers.errors import error_middleware
from handlers.state import LIVE_STT, METRICS, ORCHESTRATOR, PROMPTS, PROVIDERS, READY, SETTINGS

log = logging.getLogger("handlers.app")

TRANSFER_TEXT = "Please hold while I connect you."


def prompt_texts(settings: Settings) -> dict[str, str]:
    return {
        "greeting": settings.greeting_text,
        "fallback": settings.fallback_text,
        "reprompt": settings.reprompt_text,
        "goodbye": settings.goodbye_text,
        "busy": settings.busy_text,
        "transfer": TRANSFER_TEXT,
    }


def create_app(
    settings: Settings,
    *,
    providers: Providers | None = None,
    embedded_prompt_fallback: bool = True,
    live_stt: "StreamingSTT | None | str" = "auto",
) -> web.Application:
    """Build the application. Tests pass scripted ``providers``; otherwise they are
    built from ``settings``. ``embedded_prompt_fallback`` lets start-up render the
    prompts with piper when the configured TTS cannot. ``live_stt``: the streaming
    transcriber for calls; "auto" builds Deepgram's when Deepgram is the STT and
    ``STT_STREAMING`` is on."""
    app = web.Application(client_max_size=settings.max_upload_bytes + 64 * 1024, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PROVIDERS] = providers or registry.build(settings)
    app[READY] = {}
    app[PROMPTS] = PromptBank()
    p = app[PROVIDERS]
    app[ORCHESTRATOR] = Orchestrator(
        p.stt, p.llm, p.tts,
        stt_timeout=settings.stt_timeout, llm_timeout=settings.llm_timeout, tts_timeout=settings.tts_timeout,
    )
    app[LIVE_STT] = _live_from_settings(settings) if isinstance(live_stt, str) else live_stt
    app.cleanup_ctx.append(background_ctx)
    app.cleanup_ctx.append(_live_ctx)
    app.cleanup_ctx.append(_providers_ctx)
    app.cleanup_ctx.append(_prompts_ctx(embedded_prompt_fallback))
    app[METRICS] = Metrics()
    health.setup(app)
    orchestrate.setup(app)
    twilio.setup(app)
    metrics.setup(app)
    phone.setup(app)
    return app


def _live_from_settings(settings: Settings) -> StreamingSTT | None:
    first_stt = settings.stt_provider.split(",")[0].strip()
    if first_stt != "deepgram" or not settings.stt_streaming or not settings.deepgram_api_key:
        return None
    from bot.providers.deepgram_live import DeepgramLive

    return DeepgramLive(settings)


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    live = app[LIVE_STT]
    if live is not None:
        await live.start()
    yield
    if live is not None:
        await live.close()


async def _providers_ctx(app: web.Application) -> AsyncIterator[None]:
    p = app[PROVIDERS]
    for stage, provider in (("stt", p.stt), ("llm", p.llm), ("tts", p.tts)):
        try:
            await provider.start()
            app[READY][stage] = True
            log.info("provider ready", extra=kv(stage=stage, provider=provider.name))
        except StageError as err:
            app[READY][stage] = False
            log.error("provider failed to start", extra=kv(stage=stage, provider=provider.name, code=err.code, error=err.message))
    yield
    for provider in p.all():
        try:
            await provider.close()
        except Exception:
            log.warning("provider close failed", extra=kv(provider=provider.name), exc_info=True)


def _prompts_ctx(embedded_fallback: bool):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        texts = prompt_texts(settings)
        cache = settings.data_dir / "prompts"
        tts = app[PROVIDERS].tts
        budget = 4 * settings.tts_timeout + 1
        bank = await render_prompts(texts, [tts], cache, budget)
        missing = [n for n in texts if n not in bank.audio]
        if missing and embedded_fallback and tts.name != "piper":
            try:
                piper = registry.make_tts("piper", settings)
                await piper.start()
            except (ImportError, StageError) as exc:
                log.error("embedded TTS unavailable for prompts", extra=kv(error=type(exc).__name__))
            else:
                extra = await render_prompts({n: texts[n] for n in missing}, [piper], cache, budget)
                bank.audio.update(extra.audio)
                bank.source.update({n: s for n, s in extra.source.items() if n in extra.audio})
                await piper.close()
        app[PROMPTS].audio.update(bank.audio)
        app[PROMPTS].source.update(bank.source)
        log.info("prompts ready", extra=kv(**app[PROMPTS].status()))
        yield

    return ctx
