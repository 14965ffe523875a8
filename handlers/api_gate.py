"""The gate in front of /v1/*: a bearer key, and a cap on requests at once.

Outside trial mode the routes need ``Authorization: Bearer $API_KEY`` (compared in
constant time); with no API_KEY they are off. The key is compared first: the right
key is always let in. Wrong keys are counted by the limiter of the console's login
(handlers/login_limit.py, the same buckets): once this client or everyone guessed too
often a wrong key is answered 429 ``too_many_attempts`` with Retry-After. A request with no Authorization header guesses nothing and
is not counted. Past API_MAX_CONCURRENT requests in flight the answer is 429 ``busy``
with Retry-After. Every refusal is decided from the headers alone and closes the
connection, so a refused upload's body is never read.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.settings import Settings
from handlers import login_limit
from handlers.errors import json_error

PREFIX = "/v1/"
RETRY_AFTER_S = 2


def api_status(settings: Settings) -> dict:
    """For /healthz: is the API on, and how is it guarded."""
    if settings.trial:
        return {"enabled": True, "auth": "none (trial mode)", "max_concurrent": settings.api_max_concurrent}
    if settings.api_key:
        return {"enabled": True, "auth": "bearer", "max_concurrent": settings.api_max_concurrent}
    return {"enabled": False, "auth": "off: API_KEY is not set", "max_concurrent": settings.api_max_concurrent}


def _refuse(status: int, code: str, message: str, **headers: str) -> web.Response:
    resp = json_error(status, code, message)
    resp.headers.update(headers)
    resp.force_close()  # the body (an upload, maybe) is not read
    return resp


def bearer_ok(header: str, key: str) -> bool:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), key.encode())


def api_gate(settings: Settings):
    in_flight = 0

    @web.middleware
    async def gate(request: web.Request, handler):
        nonlocal in_flight
        if not request.path.startswith(PREFIX):
            return await handler(request)
        if not settings.trial:
            if not settings.api_key:
                return _refuse(403, "api_disabled", "the HTTP API is off on this server: set API_KEY to enable it (or TRIAL=true on a laptop)")
            header = request.headers.get("Authorization")
            if header is None or not bearer_ok(header, settings.api_key):
                # a wrong key is limited (the limiter is installed by console.setup, which
                # create_app always runs); the right key never is: guessers cannot lock the owner out
                if header is not None:
                    wait = login_limit.retry_after(request)
                    if wait:
                        return _refuse(429, login_limit.CODE, login_limit.message(wait), **{"Retry-After": str(wait)})
                    login_limit.failed(request)
                return _refuse(401, "unauthorized", "send Authorization: Bearer <API_KEY>", **{"WWW-Authenticate": "Bearer"})
        if in_flight >= settings.api_max_concurrent:
            return _refuse(
                429, "busy", f"{in_flight} API requests are already running (the limit is {settings.api_max_concurrent}); retry later",
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return gate
