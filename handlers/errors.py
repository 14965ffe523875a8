"""JSON error bodies and a middleware so no stack trace ever reaches a client."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from bot.logs import kv
from handlers.state import REQUEST_ID

log = logging.getLogger("handlers")


def json_error(status: int, code: str, message: str, **extra) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler):
    request[REQUEST_ID] = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:16]
    try:
        resp = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "too_large", "the upload is larger than the server accepts")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("unhandled error", extra=kv(request_id=request[REQUEST_ID], path=request.path))
        return json_error(500, "internal", "internal error", request_id=request[REQUEST_ID])
    return resp
