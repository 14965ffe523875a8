"""The owner's browser session: one signed cookie for the console (and the softphone).

The API key is shown once (a login form, or ``?key=`` on the first link); the server
answers with an HttpOnly, SameSite=Strict cookie ``<expiry>.<nonce>.<mac>`` signed with a
key derived from API_KEY, so changing the key ends every session; logging out revokes
the cookie in the store, so a copy of it is refused by every process and instance. State-changing forms
carry a CSRF token derived from the session (``csrf_token`` / ``check_csrf``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from aiohttp import web

from bot.logs import kv
from handlers import login_limit
from handlers.client_ip import client_scheme
from handlers.state import SETTINGS
from handlers.storage import STORE

log = logging.getLogger("handlers.session_auth")

COOKIE = "phonebot_session"
_REVOKED = web.RequestKey("session_revoked", bool)  # set by check_revoked
SESSION_S = 12 * 3600
_TRIAL_SECRET = secrets.token_bytes(32)  # signs CSRF tokens in trial mode without a key


def open_access(request: web.Request) -> bool:
    """Trial mode with no API_KEY: the pages on this machine need no login."""
    s = request.app[SETTINGS]
    return s.trial and not s.api_key


def _key(request_or_app) -> bytes:
    app = request_or_app.app if isinstance(request_or_app, web.Request) else request_or_app
    api_key = app[SETTINGS].api_key
    if not api_key:
        if app[SETTINGS].trial:
            return _TRIAL_SECRET
        raise web.HTTPNotFound(text="the console is off: set API_KEY to turn it on")
    return hmac.new(api_key.encode(), b"phonebot-session-v1", hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def key_ok(request: web.Request, given: str) -> bool:
    """The one key check of every login door: a constant-time compare first, so the right
    key always opens (guessers cannot lock the owner out); a wrong key gets 429
    (handlers/login_limit.py) once this client or everyone has guessed too often, and
    is counted otherwise."""
    api_key = request.app[SETTINGS].api_key
    if bool(api_key) and hmac.compare_digest(given.encode(), api_key.encode()):
        return True
    login_limit.check(request)
    login_limit.failed(request)
    return False


def issue_session(request: web.Request, response: web.StreamResponse) -> None:
    """Set a fresh session cookie on ``response`` (after the key was checked)."""
    expiry = int(time.time()) + SESSION_S
    body = f"{expiry}.{secrets.token_urlsafe(16)}"
    public = request.app[SETTINGS].public_url
    # Secure follows how browsers reach us: PUBLIC_URL's scheme, else our own TLS (or a
    # trusted TLS proxy's X-Forwarded-Proto: handlers/client_ip.py), never a client's say-so
    secure = public.startswith("https://") if public else client_scheme(request) == "https"
    response.set_cookie(COOKIE, f"{body}.{_mac(_key(request), body)}", max_age=SESSION_S, httponly=True,
                        samesite="Strict", secure=secure, path="/")


def session_id(raw_cookie: str) -> str:
    """The name a session is revoked under: a hash of the cookie's signed part (the
    store never holds a usable cookie)."""
    body = raw_cookie.rpartition(".")[0]
    return hashlib.sha256(body.encode()).hexdigest()


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    """Log out: the cookie is revoked in the store (every process and instance sees it,
    until it would have expired anyway) and deleted from the browser."""
    raw = request.cookies.get(COOKIE, "")
    expiry = raw.split(".", 1)[0]
    if raw and expiry.isdigit():
        await request.app[STORE].revoke_session(session_id(raw), float(expiry))
    response.del_cookie(COOKIE, path="/")


async def check_revoked(request: web.Request) -> None:
    """Before the handlers (handlers/web_security.py): is the request's session cookie
    one that was logged out? Read from the store once per request; a store that cannot
    answer counts as revoked (the console needs the store anyway)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return
    try:
        request[_REVOKED] = await request.app[STORE].session_revoked(session_id(raw))
    except Exception as exc:  # noqa: BLE001 - a store failure is logged, and the session not trusted
        log.warning("session check failed", extra=kv(error=type(exc).__name__))
        request[_REVOKED] = True


def session_valid(request: web.Request) -> bool:
    if open_access(request):
        return True
    if request.get(_REVOKED, True):  # unchecked (no middleware ran) or logged out
        return False
    raw = request.cookies.get(COOKIE, "")
    body, _, mac = raw.rpartition(".")
    expiry = body.split(".", 1)[0]
    if not (body and mac and expiry.isdigit()):
        return False
    return hmac.compare_digest(mac, _mac(_key(request), body)) and int(expiry) > time.time()


def require_session(request: web.Request) -> None:
    """Raise unless the request carries a valid session: a page is sent to the login
    form, anything else gets 401."""
    if session_valid(request):
        return
    if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPSeeOther("/console/login")
    raise web.HTTPUnauthorized(text='{"error":{"code":"unauthorized","message":"log in to the console first"}}', content_type="application/json")


def csrf_token(request: web.Request) -> str:
    return _mac(_key(request), "csrf:" + request.cookies.get(COOKIE, ""))


def check_csrf(request: web.Request, given: str) -> None:
    if not given or not hmac.compare_digest(given, csrf_token(request)):
        raise web.HTTPForbidden(text="the form is stale or came from another site: reload the page and try again")
