"""GET /metrics in the Prometheus text format, and the middleware that counts and
times every HTTP request by route template (``/twilio/prompt/{name}.wav``, not the
path a client sent, so the label set stays small)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from handlers.state import METRICS, PROVIDERS, SETTINGS

# set on a request once its websocket is prepared: a call's socket (any carrier's) lasts the
# call, so its duration is the call histogram's, not the request histogram's
WS_UPGRADED = web.RequestKey("ws_upgraded", bool)


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    p = request.app[PROVIDERS]
    m.update_circuits({"stt": p.stt, "llm": p.llm, "tts": p.tts})
    resp = web.Response(body=m.render(request.app[SETTINGS].prometheus_multiproc_dir))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def route_of(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    t0 = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        # the client went away while the handler ran; a websocket had been upgraded
        status = 101 if request.get(WS_UPGRADED) else 499
        raise
    finally:
        m, route = request.app[METRICS], route_of(request)
        m.http_requests.labels(route, request.method, str(status)).inc()
        if not request.get(WS_UPGRADED):
            m.http_seconds.labels(route, str(status)).observe(time.perf_counter() - t0)


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
