"""The Twilio carrier: its routes, its call control and stream admission for the app's life.

Twilio asks ``POST /twilio/voice`` what to do with a call (webhook.py answers with
<Connect><Stream>), then opens ``GET /twilio/media`` (media_ws.py: the Media Streams
websocket, read and written by the sans-I/O media_stream.py). Transfer and hang-up go
over the REST API, or through the <Connect action> (control.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.carriers.twilio import media_ws, webhook
from bot.carriers.twilio.admission import ADMISSION, StreamAdmission
from bot.carriers.twilio.control import TWILIO_CONTROL, StreamEndControl, TwilioRestControl
from bot.control import CallControl
from bot.instance import InstanceState
from bot.logs import kv
from bot.settings import Settings
from bot.store.shared import STORE_DOWN, CallGate
from handlers.state import INSTANCE, SETTINGS
from handlers.storage import STORE

log = logging.getLogger("bot.carriers.twilio")

SWEEP_S = 1.0


class TwilioCarrier:
    name = "twilio"

    def install(self, app: web.Application) -> None:
        app[ADMISSION] = StreamAdmission.for_settings(app[SETTINGS], app[INSTANCE])
        app.cleanup_ctx.append(_control_ctx)
        app.router.add_post("/twilio/voice", webhook.voice)
        app.router.add_post("/twilio/status", webhook.status)
        app.router.add_post("/twilio/after", webhook.after_stream)
        app.router.add_get("/twilio/prompt/{name}.wav", webhook.prompt_audio)
        app.router.add_get("/twilio/media", media_ws.media)

    def control(self, app: web.Application) -> CallControl:
        return app[TWILIO_CONTROL]


def carrier(settings: Settings) -> TwilioCarrier:  # noqa: ARG001 - every carrier module's entry point (registry.build)
    return TwilioCarrier()


async def _control_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    # the store keeps stream admissions and <Connect action> answers: any process or instance answers
    gate = app[ADMISSION].gate = CallGate(app[STORE].engine)
    control: StreamEndControl
    if s.twilio_account_sid and s.twilio_auth_token:
        rest = TwilioRestControl(s.twilio_account_sid, s.twilio_auth_token, s.twilio_base_url, actions=gate)
        await rest.start()
        control = rest
    else:
        control = StreamEndControl(gate)
    app[TWILIO_CONTROL] = control
    sweeper = asyncio.get_running_loop().create_task(_sweep_reservations(app[ADMISSION].instance, gate), name="reservations")
    yield
    sweeper.cancel()
    if isinstance(control, TwilioRestControl):
        await control.close()


async def _sweep_reservations(instance: InstanceState, gate: CallGate) -> None:
    """A webhook answered here whose stream started on another instance: free its slot here
    now, not when its token expires."""
    while True:
        await asyncio.sleep(SWEEP_S)
        waiting = instance.reserved()
        if not waiting:
            continue
        try:
            gone = await gate.admitted_among(waiting)
        except STORE_DOWN as exc:  # the store is down: the reservations lapse on their own
            log.warning("reservation sweep failed", extra=kv(error=type(exc).__name__))
            continue
        if gone:
            instance.drop_reservations(sorted(gone))
