"""The Twilio boundary: voice webhook, status callbacks, the <Connect> action,
prompt audio for <Play>. Signature checks are in handlers/signatures.py, the media
websocket in handlers/media_ws.py."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiohttp import web
from twilio.twiml.voice_response import Connect, VoiceResponse

from bot.control import StreamEndControl, TwilioRestControl
from bot.logs import kv
from bot.providers.warm import warm_all
from bot.redact import mask_number
from handlers import media_ws
from handlers.background import spawn
from handlers.signatures import forbidden, public_base, signature_ok, ws_base
from handlers.state import CALLS, CONTROL, DRAINING, METRICS, PROMPTS, PROVIDERS, SETTINGS
from media import wav

log = logging.getLogger("handlers.twilio")


async def _checked_form(request: web.Request) -> dict:
    params = await request.post()
    url = public_base(request) + request.path_qs
    if not signature_ok(request, url, params):
        log.warning("bad twilio signature", extra=kv(path=request.path, has_signature="X-Twilio-Signature" in request.headers))
        raise forbidden()
    return params


def _twiml(resp: VoiceResponse) -> web.Response:
    return web.Response(text=str(resp), content_type="application/xml")


def _busy_twiml(request: web.Request) -> VoiceResponse:
    resp = VoiceResponse()
    if request.app[PROMPTS].get("busy"):
        resp.play(public_base(request) + "/twilio/prompt/busy.wav")
    else:
        resp.say(request.app[SETTINGS].busy_text)
    resp.hangup()
    return resp


async def voice(request: web.Request) -> web.Response:
    params = await _checked_form(request)
    app = request.app
    call_sid = params.get("CallSid", "")
    fields = kv(call_sid=call_sid, caller=mask_number(params.get("From", "")), called=mask_number(params.get("To", "")))
    if app[DRAINING]["on"] or len(app[CALLS]) >= app[SETTINGS].max_calls:
        reason = "draining" if app[DRAINING]["on"] else "capacity"
        app[METRICS].calls_rejected.labels(reason).inc()
        log.warning("call refused", extra=kv(reason=reason, **fields["fields"]))
        return _twiml(_busy_twiml(request))
    base = public_base(request)
    resp = VoiceResponse()
    connect = Connect(action=base + "/twilio/after")
    stream = connect.stream(url=ws_base(base) + "/twilio/media", status_callback=base + "/twilio/status")
    for name, key in (("caller", "From"), ("called", "To"), ("direction", "Direction")):
        if params.get(key):
            stream.parameter(name=name, value=params.get(key))
    resp.append(connect)
    # the caller hears the greeting from memory; meanwhile the providers' connections open
    spawn(app, warm_all(app[PROVIDERS].all()), name=f"warm-{call_sid[-6:]}")
    log.info("incoming call", extra=fields)
    return _twiml(resp)


async def status(request: web.Request) -> web.Response:
    params = await _checked_form(request)
    log.info(
        "twilio status",
        extra=kv(
            call_sid=params.get("CallSid"), stream_sid=params.get("StreamSid"),
            call_status=params.get("CallStatus"), stream_event=params.get("StreamEvent"),
            stream_error=params.get("StreamError"), duration=params.get("CallDuration"),
        ),
    )
    return web.Response(status=204)


async def after_stream(request: web.Request) -> web.Response:
    """<Connect action>: Twilio asks what to do once our websocket has closed."""
    params = await _checked_form(request)
    twiml = request.app[CONTROL].after_stream_twiml(params.get("CallSid", ""))
    return web.Response(text=twiml, content_type="application/xml")


async def prompt_audio(request: web.Request) -> web.Response:
    """The pre-rendered prompts as mu-law WAV, for <Play> (e.g. the busy message)."""
    audio = request.app[PROMPTS].get(request.match_info["name"])
    if not audio or request.match_info["name"] not in ("busy",):
        raise web.HTTPNotFound()
    return web.Response(body=wav.write_mulaw(audio), content_type="audio/wav")


async def _control_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    if s.twilio_account_sid and s.twilio_auth_token:
        control = TwilioRestControl(s.twilio_account_sid, s.twilio_auth_token, s.twilio_base_url)
        await control.start()
        app[CONTROL] = control
    else:
        app[CONTROL] = StreamEndControl()
    yield
    if isinstance(app[CONTROL], TwilioRestControl):
        await app[CONTROL].close()


def setup(app: web.Application) -> None:
    app[CALLS] = {}
    app[DRAINING] = {"on": False}
    app.cleanup_ctx.append(_control_ctx)
    app.router.add_post("/twilio/voice", voice)
    app.router.add_post("/twilio/status", status)
    app.router.add_post("/twilio/after", after_stream)
    app.router.add_get("/twilio/prompt/{name}.wav", prompt_audio)
    app.router.add_get("/twilio/media", media_ws.media)
