"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from handlers.state import METRICS


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=request.app[METRICS].render())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
