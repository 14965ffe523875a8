"""Build the carriers named in ``Settings.carriers`` from the table in ``bot.carriers``."""

from __future__ import annotations

import importlib

from aiohttp import web

from bot.carriers import CARRIERS
from bot.carriers.base import Carrier
from bot.carriers.sip.config import with_sip
from bot.settings import Settings, SettingsError

CARRIERS_KEY = web.AppKey("carriers", dict)  # name -> Carrier, in the order CARRIERS names them


def build(settings: Settings) -> list[Carrier]:
    """One carrier per name (``SettingsError`` for a name not in the table)."""
    made: list[Carrier] = []
    for name in with_sip(settings.carriers, settings.sip_listen):  # SIP_LISTEN switches SIP on, in code too
        module = CARRIERS.get(name)
        if module is None:  # Settings.from_env refuses it first; Settings(...) built in code does not
            raise SettingsError(f"CARRIERS: unknown carrier {name!r}; expected one of {', '.join(CARRIERS)}")
        made.append(importlib.import_module(module).carrier(settings))
    return made


def install(app: web.Application, settings: Settings) -> None:
    carriers = build(settings)
    app[CARRIERS_KEY] = {c.name: c for c in carriers}
    for c in carriers:
        c.install(app)
