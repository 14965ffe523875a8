"""The direct-SIP carrier: ``SIP_LISTEN`` on, the SIP server lives in the app's cleanup_ctx
and each answered call runs through ``run_call`` like a Twilio call (the call record,
messages, transfers, the console's live calls, metrics and drain)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from bot.carriers.sip.call_transport import SipControl, SipTransport
from bot.carriers.sip.dialog import SipCall
from bot.carriers.sip.uas import SipServer
from bot.logs import kv

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.sip")

SIP_SERVER = web.AppKey("sip_server", SipServer)


class SipCarrier:
    """The ``Carrier`` of bot/carriers/base.py: ``install`` adds the listener's cleanup_ctx,
    ``control`` is the REFER/BYE control for any of its calls."""

    name = "sip"

    def install(self, app: web.Application) -> None:
        app.cleanup_ctx.append(sip_ctx)

    def control(self, app: web.Application) -> SipControl:
        from handlers.state import PROMPTS

        server = app[SIP_SERVER]
        return SipControl(server.call_by_sid, app[PROMPTS])


def carrier(settings: Settings) -> SipCarrier:  # noqa: ARG001 - the carrier table's factory signature
    """The carrier table's factory (bot/carriers/__init__.py names this module)."""
    return SipCarrier()


async def sip_ctx(app: web.Application) -> AsyncIterator[None]:
    from bot.carriers.base import serve_call
    from handlers.startup import STARTUP
    from handlers.state import CALLS, DRAINING, METRICS, SETTINGS

    settings = app[SETTINGS]

    def admit() -> str | None:
        if STARTUP in app and not app[STARTUP].ready:
            return "starting"
        if app[DRAINING].on:
            return "draining"
        if len(app[CALLS]) >= settings.max_calls:
            return "capacity"
        return None

    async def start(call: SipCall) -> None:
        await serve_call(app, SipTransport(call), SipCarrier().control(app))

    server = SipServer(settings, start_call=start, admit=admit, draining=lambda: app[DRAINING].on,
                       on_refuse=lambda reason: app[METRICS].calls_rejected.labels(reason).inc(),
                       on_drop=lambda reason: app[METRICS].sip_dropped.labels(reason).inc())
    await server.start()
    app[SIP_SERVER] = server
    log.info("sip listening", extra=kv(listen=",".join(f"{p}:{h}:{n}" for p, h, n in settings.sip_listen),
                                       allow=len(settings.sip_allow), digest=bool(settings.sip_username)))
    try:
        yield
    finally:
        await server.close()
