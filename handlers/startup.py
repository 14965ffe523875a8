"""Start-up work: the live STT, the providers (models load here), the prompts.

It runs as one task started from a cleanup_ctx. On the server it runs in the
background, so the port is bound and ``/livez`` answers at once while models load
(``/readyz`` says what is still loading; a call arriving meanwhile gets the busy
answer). Tests and library users get the default: the context waits for it, so the
app is ready when it starts. Progress is logged as it goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.errors import StageError
from bot.logs import kv
from bot.prompts import render_prompts
from bot.providers import registry
from bot.settings import Settings
from handlers.state import LIVE_STT, PROMPTS, PROVIDERS, READY, SETTINGS

log = logging.getLogger("handlers.startup")


@dataclass
class Startup:
    step: str = "starting"  # what is loading now, for /readyz
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    t0: float = field(default_factory=time.monotonic)

    @property
    def ready(self) -> bool:
        return self.done.is_set() and self.task is not None and not self.task.cancelled() and self.task.exception() is None


STARTUP = web.AppKey("startup", Startup)


def startup_ctx(texts: Callable[[Settings], dict[str, str]], embedded_fallback: bool, background: bool):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        state = app[STARTUP] = Startup()
        state.task = asyncio.get_running_loop().create_task(_start(app, state, texts(app[SETTINGS]), embedded_fallback), name="startup")
        state.task.add_done_callback(lambda _t: state.done.set())
        if not background:
            await state.task  # a failure stops the app from starting, as it always did
        try:
            yield
        finally:
            if not state.task.done():
                state.task.cancel()
                await asyncio.wait([state.task], timeout=5.0)
            await _close(app)

    return ctx


async def _start(app: web.Application, state: Startup, texts: dict[str, str], embedded_fallback: bool) -> None:
    live = app[LIVE_STT]
    if live is not None:
        state.step = "live stt"
        await live.start()
    p = app[PROVIDERS]
    for stage, provider in (("stt", p.stt), ("llm", p.llm), ("tts", p.tts)):
        state.step = f"{stage} {provider.name}"
        log.info(f"loading {stage}: {provider.name}...", extra=kv(stage=stage, provider=provider.name))
        t = time.monotonic()
        try:
            await provider.start()
        except StageError as err:
            app[READY][stage] = False
            log.error("provider failed to start", extra=kv(stage=stage, provider=provider.name, code=err.code, error=err.message))
        else:
            app[READY][stage] = True
            log.info("provider ready", extra=kv(stage=stage, provider=provider.name, ms=round((time.monotonic() - t) * 1000)))
    await _prompts(app, state, texts, embedded_fallback)
    log.info("ready", extra=kv(seconds=round(time.monotonic() - state.t0, 1)))


async def _prompts(app: web.Application, state: Startup, texts: dict[str, str], embedded_fallback: bool) -> None:
    settings = app[SETTINGS]
    cache = settings.data_dir / "prompts"
    tts = app[PROVIDERS].tts
    budget = 4 * settings.tts_timeout + 1

    def progress(done: int, total: int, name: str) -> None:
        state.step = f"prompts {done}/{total}"
        log.info(f"rendering prompts {done}/{total}...", extra=kv(prompt=name))

    bank = await render_prompts(texts, [tts], cache, budget, progress=progress)
    missing = [n for n in texts if n not in bank.audio]
    if missing and embedded_fallback and tts.name != "piper":
        try:
            piper = registry.make_tts("piper", settings)
            await piper.start()
        except (ImportError, RuntimeError, StageError) as exc:
            log.error("embedded TTS unavailable for prompts", extra=kv(error=type(exc).__name__))
        else:
            try:
                extra = await render_prompts({n: texts[n] for n in missing}, [piper], cache, budget, progress=progress)
            finally:
                await piper.close()
            bank.audio.update(extra.audio)
            bank.source.update({n: s for n, s in extra.source.items() if n in extra.audio})
    app[PROMPTS].audio.update(bank.audio)
    app[PROMPTS].text.update(texts)
    app[PROMPTS].source.update(bank.source)
    log.info("prompts ready", extra=kv(**app[PROMPTS].status()))


async def _close(app: web.Application) -> None:
    for provider in app[PROVIDERS].all():
        try:
            await provider.close()
        except Exception:
            log.warning("provider close failed", extra=kv(provider=provider.name), exc_info=True)
    live = app[LIVE_STT]
    if live is not None:
        await live.close()
