"""JSON error bodies and a middleware so no stack trace ever reaches a client.

The middleware also runs the request's part of the connection edge (bot.edge): the
body of a form post (a webhook) is read here, whole and within BODY_TIMEOUT_S, so a
handler never waits on a slow client, and at most FORM_MAX_BYTES of it (413 unread when
Content-Length says more); routes under /v1/ stream their uploads and
keep their own accounting. A client that goes away mid-request is one INFO line, not
an error with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from bot.edge import ConnectionGuard
from bot.logs import kv
from handlers.state import EDGE, REQUEST_ID, SETTINGS

log = logging.getLogger("handlers")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,64}")
STREAMED_PREFIXES = ("/v1/",)  # these handlers read their own bodies, with their own limits
FORM_MAX_BYTES = 64 * 1024  # every other body is a form (Twilio's callbacks, the console's): a few KB


class ClientGone(Exception):
    """The client closed the connection before its request was read."""


class BadBody(Exception):
    """The body cannot be decoded as its headers say (a broken Content-Encoding, chunking)."""


def json_error(status: int, code: str, message: str, **extra) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


def request_id(header: str) -> str:
    """The client's X-Request-Id if it is short and plain; otherwise a new one (a value
    with tabs, newlines or control characters is never echoed or logged)."""
    return header if _SAFE_ID.fullmatch(header) else uuid.uuid4().hex[:16]


async def read_body(request: web.Request, timeout: float) -> None:
    """Read (and cache) the whole body within ``timeout``. Raises HTTPRequestTimeout,
    HTTPRequestEntityTooLarge (client_max_size), ClientGone or BadBody."""
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    except ConnectionError:
        raise ClientGone() from None
    except (HttpProcessingError, RequestPayloadError):
        raise BadBody() from None


async def _read_form_body(request: web.Request, edge: ConnectionGuard | None, transport: asyncio.Transport | None) -> web.Request:
    """Read a small body whole before the handler runs, within FORM_MAX_BYTES and the body deadline."""
    if (request.content_length or 0) > FORM_MAX_BYTES:  # said so up front: refused unread
        raise web.HTTPRequestEntityTooLarge(FORM_MAX_BYTES, request.content_length or 0)
    request = request.clone(client_max_size=FORM_MAX_BYTES)  # the counted read stops at the cap
    if edge is not None:
        edge.reading_body(transport)
    await read_body(request, request.app[SETTINGS].body_timeout_s)
    if edge is not None:
        edge.busy(transport)
    return request


@web.middleware
async def error_middleware(request: web.Request, handler):
    request[REQUEST_ID] = request_id(request.headers.get("X-Request-Id", ""))
    edge, transport = request.app.get(EDGE), request.transport
    if edge is not None:
        edge.busy(transport)
    try:
        if request.body_exists and not request.path.startswith(STREAMED_PREFIXES):
            request = await _read_form_body(request, edge, transport)
        resp = await handler(request)
    except ClientGone:
        log.info("client went away", extra=kv(request_id=request[REQUEST_ID], path=request.path, outcome="client_gone"))
        return _closing(json_error(499, "client_gone", "the client closed the connection"))
    except (BadBody, HttpProcessingError, RequestPayloadError):  # a handler reading its own body (/v1) meets it too
        log.info("request body undecodable", extra=kv(request_id=request[REQUEST_ID], path=request.path, outcome="bad_body"))
        request.content.feed_eof()  # the rest is not read (aiohttp's lingering read would meet the error again)
        return _closing(json_error(400, "bad_body", "the request body cannot be decoded as its headers say"))
    except web.HTTPRequestEntityTooLarge:
        return _closing(json_error(413, "too_large", "the request is larger than the server accepts"))
    except web.HTTPRequestTimeout:
        log.info("request body too slow", extra=kv(request_id=request[REQUEST_ID], path=request.path, outcome="body_timeout"))
        return _closing(json_error(408, "body_timeout", "the request body did not arrive in time"))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except ConnectionError:
        log.info("client went away", extra=kv(request_id=request[REQUEST_ID], path=request.path, outcome="client_gone"))
        return _closing(json_error(499, "client_gone", "the client closed the connection"))
    except Exception:
        log.exception("unhandled error", extra=kv(request_id=request[REQUEST_ID], path=request.path))
        return json_error(500, "internal", "internal error", request_id=request[REQUEST_ID])
    finally:
        if edge is not None:
            edge.done(transport)
    return resp


def _closing(resp: web.Response) -> web.Response:
    resp.force_close()
    return resp
