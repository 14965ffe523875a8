"""The direct-SIP carrier: ``SIP_LISTEN`` on, the SIP server lives in the app's cleanup_ctx
and each answered call runs through ``run_call`` like a Twilio call (the call record,
messages, transfers, the console's live calls, metrics and drain)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.carriers.sip.call_transport import SipControl, SipTransport
from bot.carriers.sip.dialog import SipCall
from bot.carriers.sip.uas import SipServer
from bot.logs import kv

log = logging.getLogger("bot.sip")

SIP_SERVER = web.AppKey("sip_server", SipServer)


class SipCarrier:
    name = "sip"

    def install(self, app: web.Application) -> None:
        app.cleanup_ctx.append(sip_ctx)


async def sip_ctx(app: web.Application) -> AsyncIterator[None]:
    from bot.run_call import CALLS, DRAINING, run_call
    from handlers.startup import STARTUP
    from handlers.state import METRICS, PROMPTS, SETTINGS, call_engine

    settings = app[SETTINGS]

    def admit() -> str | None:
        if STARTUP in app and not app[STARTUP].ready:
            return "starting"
        if app[DRAINING]["on"]:
            return "draining"
        if len(app[CALLS]) >= settings.max_calls:
            return "capacity"
        return None

    async def start(call: SipCall) -> None:
        transport = SipTransport(call)
        control = SipControl(call, app[PROMPTS])
        await run_call(transport, dataclasses.replace(call_engine(app), control=control))

    server = SipServer(settings, start_call=start, admit=admit, draining=lambda: app[DRAINING]["on"],
                       on_refuse=lambda reason: app[METRICS].calls_rejected.labels(reason).inc())
    await server.start()
    app[SIP_SERVER] = server
    log.info("sip listening", extra=kv(listen=",".join(f"{p}:{h}:{n}" for p, h, n in settings.sip_listen),
                                       allow=len(settings.sip_allow), digest=bool(settings.sip_username)))
    try:
        yield
    finally:
        await server.close()
