"""GET /: a small page that says what this server is and links its doors (softphone, console, health)."""

from __future__ import annotations

import jinja2
from aiohttp import web

from bot.assets import WEB
from handlers.state import SETTINGS

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True)


async def landing(request: web.Request) -> web.Response:
    s = request.app[SETTINGS]
    html = _env.get_template("landing.html").render(trial=s.trial, key_set=bool(s.api_key))
    resp = web.Response(text=html, content_type="text/html")
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'; frame-ancestors 'none'"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/", landing)
