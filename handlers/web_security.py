"""The browser pages' protections, in one middleware: /phone (the softphone) and
/console (the owner's pages).

- Every answer carries a Content-Security-Policy with ``frame-ancestors 'none'`` (and
  X-Frame-Options DENY for old browsers), nosniff and a same-origin referrer: no other site can
  frame the softphone (clickjacking the Call button) or the console. The softphone's
  policy allows its own scripts and worklet, its own websocket and its one inline
  style block (by hash, computed from web/phone.html at start).
- A browser request that changes something (a POST, a websocket upgrade) with an
  ``Origin`` is refused 403 unless the Origin is this server's: PUBLIC_URL's scheme
  and host, else the request's own (its scheme as handlers/client_ip.py sees it). A
  page on ``https://evil`` or an ``https://`` Origin sent to a plain-http server is
  refused; a client that sends no Origin (curl, Twilio) is not a browser and passes.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from bot.logs import kv
from handlers.client_ip import client_scheme
from handlers.session_auth import check_revoked
from handlers.state import SETTINGS

log = logging.getLogger("handlers.web_security")

PREFIXES = ("/phone", "/console")
CONSOLE_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def phone_csp(origin: str) -> str:
    """The softphone's policy; ``origin`` (scheme://host) names its websocket explicitly
    (``'self'`` covers it in CSP 3 browsers only)."""
    parts = urlsplit(origin)
    ws = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    return (f"default-src 'none'; script-src 'self'; connect-src 'self' {ws}; style-src 'self'; "
            "img-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _norm(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS.get(scheme, 0)


def own_origin(request: web.Request) -> str:
    """This server's origin as the browser sees it: PUBLIC_URL's, else the request's."""
    public = request.app[SETTINGS].public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}"
    return f"{client_scheme(request)}://{request.host}"


def origin_ok(request: web.Request) -> bool:
    """No Origin (not a browser), or exactly this server's scheme, host and port."""
    given = request.headers.get("Origin")
    if given is None:
        return True
    return _norm(given) is not None and _norm(given) == _norm(own_origin(request))


def _changes_something(request: web.Request) -> bool:
    return request.method not in ("GET", "HEAD", "OPTIONS") or request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def web_security(request: web.Request, handler):
    await check_revoked(request)  # a logged-out session cookie is refused on every route that takes one
    if not request.path.startswith(PREFIXES):
        return await handler(request)
    if _changes_something(request) and not origin_ok(request):
        log.info("cross-origin request refused", extra=kv(path=request.path, method=request.method))
        raise web.HTTPForbidden(text='{"error":{"code":"bad_origin","message":"this request must come from this server\'s own pages"}}',
                                content_type="application/json")
    try:
        resp = await handler(request)
    except web.HTTPException as exc:  # redirects and refusals get the headers too
        _protect(request, exc)
        raise
    _protect(request, resp)
    return resp


def _protect(request: web.Request, resp: web.StreamResponse) -> None:
    if resp.prepared:  # a websocket, already upgraded
        return
    csp = phone_csp(own_origin(request)) if request.path.startswith("/phone") else CONSOLE_CSP
    resp.headers.setdefault("Content-Security-Policy", csp)
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    # not "no-referrer": with it a browser sends "Origin: null" on its own form posts (Fetch), which the
    # Origin check must refuse; "same-origin" keeps the address from every other site all the same
    resp.headers.setdefault("Referrer-Policy", "same-origin")
