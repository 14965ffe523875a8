"""What a carrier is to the app: ``Carrier``, and ``serve_call`` for each call it brings.

A carrier is one package under ``bot/carriers/`` (Twilio, the browser softphone, SIP):
its wire format (a sans-I/O protocol object where there is one), its transport
(``bot.transport.Transport``: the engine's side, carrier-neutral), its admission rules
and its call control (``bot.control.CallControl``: transfer and hang-up; a dial-out
later joins it there). The engine (``bot.run_call``) never imports a carrier.

The app builds the carriers named in ``CARRIERS`` (``bot.carriers.registry``) and calls
``install`` on each before it starts: a carrier adds its routes, and its long-lived
resources (a REST client, a UDP/TCP listener) as ``cleanup_ctx`` entries, which open
after the store and close before it. For each call it then runs
``serve_call(app, transport, control)``, the one way into the engine.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from aiohttp import web

from bot.call import CallSession
from bot.control import CallControl
from bot.run_call import Observer, run_call
from bot.transport import Transport
from handlers.call_engine import call_engine


class Carrier(Protocol):
    name: str  # its line in the CARRIERS table; the transports' ``kind`` label

    def install(self, app: web.Application) -> None:
        """Add routes, ``cleanup_ctx`` entries and app keys (called once, before the app starts)."""

    def control(self, app: web.Application) -> CallControl:
        """The call control for this carrier's calls, once the app has started."""


async def serve_call(
    app: web.Application, transport: Transport, control: CallControl, *, key: object | None = None, observer: Observer | None = None,
) -> CallSession | None:
    """Run one call on the engine with the carrier's own ``control`` (the app's call engine,
    its record in the store, the live-call registry, drain, metrics)."""
    engine = dataclasses.replace(call_engine(app), control=control)
    return await run_call(transport, engine, key=key, observer=observer)
