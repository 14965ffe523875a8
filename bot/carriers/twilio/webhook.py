"""Twilio's webhooks: the voice webhook (TwiML that connects the media stream), status
callbacks, the <Connect> action, prompt audio for <Play>. Signature checks are in
signatures.py, the media websocket in media_ws.py, the routes in carrier.py."""

from __future__ import annotations

import logging

from aiohttp import web
from twilio.twiml.voice_response import Connect, VoiceResponse

from bot.carriers.twilio.admission import ADMISSION, TOKEN_PARAM, admitted_before
from bot.carriers.twilio.control import TWILIO_CONTROL
from bot.carriers.twilio.media_stream import SID_CALL, valid_caller
from bot.carriers.twilio.signatures import forbidden, public_base, signature_ok, ws_base
from bot.logs import kv
from bot.providers.warm import warm_all
from bot.redact import mask_number
from bot.store.shared import STORE_DOWN
from handlers.background import spawn
from handlers.forms import form_fields
from handlers.startup import STARTUP
from handlers.state import DRAINING, METRICS, PROMPTS, PROVIDERS, SETTINGS
from media import wav

log = logging.getLogger("bot.carriers.twilio")

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
    admission = app[ADMISSION]
    if await admitted_before(admission.gate, call_sid):
        # a replayed (or repeated) webhook: this call's stream was admitted already, anywhere
        app[METRICS].calls_rejected.labels("replayed_webhook").inc()
        log.warning("webhook for an admitted call refused", extra=fields)
        resp = VoiceResponse()
        resp.hangup()
        return _twiml(resp)
    starting = not app[STARTUP].ready  # models and prompts still loading
    reason = "starting" if starting else "draining" if app[DRAINING].on else None
    if reason is None and not admission.reserve(call_sid):
        reason = "capacity"
    if reason is not None:
        app[METRICS].calls_rejected.labels(reason).inc()
        log.warning("call refused", extra=kv(reason=reason, **fields["fields"]))
        return _twiml(_busy_twiml(request))
    base = public_base(request)
    resp = VoiceResponse()
    connect = Connect(action=base + "/twilio/after")
    stream = connect.stream(url=ws_base(base) + "/twilio/media", status_callback=base + "/twilio/status")
    direction = params.get("Direction", "")
    bound = {"caller": caller, "called": called, "direction": direction if direction in DIRECTIONS else ""}
    # the stream must bring these back in start.customParameters; the token covers them all
    # (admission.py)
    stream.parameter(name=TOKEN_PARAM, value=admission.tokens.mint(call_sid, bound))
    for name, value in bound.items():
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
    call_sid = params.get("CallSid", "")
    twiml = None
    if SID_CALL.fullmatch(call_sid):
        try:
            twiml = await request.app[TWILIO_CONTROL].after_stream(call_sid)
        except STORE_DOWN as exc:  # the store cannot say: the caller still hears something (below)
            log.error("connect action lookup failed", extra=kv(call_sid=call_sid, error=type(exc).__name__))
    if twiml is None and params.get("CallStatus") in ENDED_STATUSES:  # the caller hung up: nobody to tell
        return _twiml(_hangup())
    if twiml is None:
        # no stream of ours left an answer: it never started, its process died, or the store
        # lost it. The caller has heard nothing of this: say so, and put them through if we can.
        log.warning("connect action for an unknown call", extra=kv(call_sid=call_sid[:64], call_status=params.get("CallStatus")))
        return _twiml(_apology_twiml(request.app[SETTINGS].transfer_number))
    return web.Response(text=twiml, content_type="application/xml")


ENDED_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")


def _hangup() -> VoiceResponse:
    resp = VoiceResponse()
    resp.hangup()
    return resp


APOLOGY_TEXT = "Sorry, something went wrong with this call."


def _apology_twiml(front_desk: str) -> VoiceResponse:
    resp = VoiceResponse()
    if front_desk:
        resp.say(APOLOGY_TEXT + " Let me put you through.")
        resp.dial(front_desk)
    else:
        resp.say(APOLOGY_TEXT + " Please call again.")
        resp.hangup()
    return resp


async def prompt_audio(request: web.Request) -> web.Response:
    """The pre-rendered prompts as mu-law WAV, for <Play> (e.g. the busy message)."""
    audio = request.app[PROMPTS].get(request.match_info["name"])
    if not audio or request.match_info["name"] not in ("busy",):
        raise web.HTTPNotFound()
    return web.Response(body=wav.write_mulaw(audio), content_type="audio/wav")
