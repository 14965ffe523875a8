"""The browser carrier: the softphone's page, its assets and its websocket."""

from __future__ import annotations

from aiohttp import web

from bot.carriers.browser import phone
from bot.control import CallControl, LocalControl
from bot.settings import Settings
from handlers import login_limit


class BrowserCarrier:
    name = "browser"

    def install(self, app: web.Application) -> None:
        login_limit.install(app)
        app.router.add_get("/phone", phone.page)
        app.router.add_get("/phone/ws", phone.socket)
        app.router.add_get("/phone/{name}", phone.asset)

    def control(self, app: web.Application) -> CallControl:  # noqa: ARG002 - Carrier.control
        return LocalControl()  # no carrier to ask: the call's end is the hang-up


def carrier(settings: Settings) -> BrowserCarrier:  # noqa: ARG001 - every carrier module's entry point (registry.build)
    return BrowserCarrier()
