"""Twilio request signatures: where Twilio reached us, and whether it signed it."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from twilio.request_validator import RequestValidator

from handlers.state import SETTINGS

FORBIDDEN = '{"error":{"code":"forbidden","message":"bad or missing Twilio signature"}}'


def public_base(request: web.Request) -> str:
    """How Twilio reaches us: PUBLIC_URL when set (behind a proxy or tunnel the
    request's own URL is not it), else the request's own scheme and host."""
    configured = request.app[SETTINGS].public_url
    if configured:
        return configured
    return f"{request.scheme}://{request.host}"


def ws_base(http_base: str) -> str:
    parts = urlsplit(http_base)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def signature_ok(request: web.Request, url: str, params) -> bool:
    settings = request.app[SETTINGS]
    if not settings.twilio_validate:
        return True
    sig = request.headers.get("X-Twilio-Signature", "")
    if not sig:
        return False
    return RequestValidator(settings.twilio_auth_token).validate(url, params, sig)


def forbidden() -> web.HTTPForbidden:
    return web.HTTPForbidden(text=FORBIDDEN, content_type="application/json")
