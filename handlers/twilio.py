"""The Twilio boundary: voice webhook, status callbacks, the <Connect> action,
prompt audio for <Play>. Signature checks are in handlers/signatures.py, the media
websocket in handlers/media_ws.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from twilio.twiml.voice_response import Connect, VoiceResponse

from bot.call_registry import CallRegistry
from bot.control import StreamEndControl, TwilioRestControl
from bot.logs import kv
from bot.media_stream import SID_CALL, valid_caller
from bot.providers.warm import warm_all
from bot.redact import mask_number
from handlers import media_ws
from handlers.background import spawn
from handlers.forms import form_fields
from handlers.signatures import forbidden, public_base, signature_ok, ws_base
from handlers.startup import STARTUP
from handlers.state import CALLS, CONTROL, DRAINING, METRICS, PROMPTS, PROVIDERS, SETTINGS
from handlers.stream_admission import ADMISSION, TOKEN_PARAM, StreamAdmission
from media import wav

log = logging.getLogger("handlers.twilio")

DIRECTIONS = ("inbound", "outbound-api", "outbound-dial")


async def _checked_form(request: web.Request) -> dict[str, str]:
    """The signed form's fields (urlencoded only: handlers/forms.py)."""
    params = await form_fields(request)
    url = public_base(request) + request.path_qs
    if not signature_ok(request, url, params):
        log.warning("bad twilio signature", extra=kv(path=request.path, checked_url=url, has_signature="X-Twilio-Signature" in request.headers))
        raise forbidden()
    fields: dict[str, str] = {}
    for k, v in params.items():
        fields.setdefault(k, v)
    return fields


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
    caller, called = valid_caller(params.get("From")), valid_caller(params.get("To"))
    if not SID_CALL.fullmatch(call_sid):
        log.warning("webhook without a valid CallSid")
        resp = VoiceResponse()
        resp.hangup()
        return _twiml(resp)
    fields = kv(call_sid=call_sid, caller=mask_number(caller) or "unknown", called=mask_number(called) or "unknown")
    starting = not app[STARTUP].ready  # models and prompts still loading
    if starting or app[DRAINING]["on"] or app[ADMISSION].full:
        reason = "starting" if starting else "draining" if app[DRAINING]["on"] else "capacity"
        app[METRICS].calls_rejected.labels(reason).inc()
        log.warning("call refused", extra=kv(reason=reason, **fields["fields"]))
        return _twiml(_busy_twiml(request))
    base = public_base(request)
    resp = VoiceResponse()
    connect = Connect(action=base + "/twilio/after")
    stream = connect.stream(url=ws_base(base) + "/twilio/media", status_callback=base + "/twilio/status")
    # the stream must bring this back in start.customParameters (handlers/stream_admission.py)
    stream.parameter(name=TOKEN_PARAM, value=app[ADMISSION].tokens.mint(call_sid))
    direction = params.get("Direction", "")
    for name, value in (("caller", caller), ("called", called), ("direction", direction if direction in DIRECTIONS else "")):
        if value:
            stream.parameter(name=name, value=value)
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
    made = app[CONTROL]
    if isinstance(made, TwilioRestControl):
        await made.close()


def setup(app: web.Application) -> None:
    app[CALLS] = CallRegistry()  # internal stream id -> CallSession
    app[ADMISSION] = StreamAdmission.for_settings(app[SETTINGS])
    app[DRAINING] = {"on": False}
    app.cleanup_ctx.append(_control_ctx)
    app.router.add_post("/twilio/voice", voice)
    app.router.add_post("/twilio/status", status)
    app.router.add_post("/twilio/after", after_stream)
    app.router.add_get("/twilio/prompt/{name}.wav", prompt_audio)
    app.router.add_get("/twilio/media", media_ws.media)
