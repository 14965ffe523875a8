"""/console: the owner's pages. Server-rendered (Jinja2, autoescaped), no script needed.

Live calls, recent calls with their outcome and a per-turn latency chart, messages
(filter by status, mark handled, CSV export), providers and circuits. Behind the API
key through the session cookie of handlers/session_auth.py.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.store.api import MESSAGE_STATUSES
from bot.text_safety import visible
from handlers import login_limit
from handlers.console_chart import latency_svg
from handlers.forms import form_fields
from handlers.health import health_report
from handlers.session_auth import check_csrf, csrf_token, end_session, issue_session, key_ok, require_session, session_valid
from handlers.state import CALLS, SETTINGS
from handlers.storage import STORE

WEB = Path(__file__).resolve().parent.parent / "web"
# every value a template prints goes through ``visible`` before it is escaped: a caller's
# U+202E or U+009B is shown as an escape, never rendered (bot/text_safety.py)
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True, trim_blocks=True,
                          lstrip_blocks=True, finalize=lambda v: visible(v) if isinstance(v, str) and not isinstance(v, Markup) else v)


def _when(app, ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, ZoneInfo(app[SETTINGS].timezone)).strftime("%Y-%m-%d %H:%M:%S")


def _page(request: web.Request, template: str, **ctx) -> web.Response:
    ctx.update(when=lambda ts: _when(request.app, ts), csrf=csrf_token(request) if session_valid(request) else "", path=request.path)
    resp = web.Response(text=_env.get_template(template).render(**ctx), content_type="text/html")
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes a browser send "Origin: null" on a form post
    return resp


async def login_form(request: web.Request) -> web.Response:
    require_key_set(request)
    return _page(request, "login.html", error=None)


async def login(request: web.Request) -> web.Response:
    require_key_set(request)
    form = await form_fields(request)
    if not key_ok(request, str(form.get("key", ""))):
        resp = _page(request, "login.html", error="That key is not right.")
        resp.set_status(401)
        return resp
    resp = web.HTTPSeeOther("/console")
    issue_session(request, resp)
    raise resp


async def logout(request: web.Request) -> web.Response:
    require_session(request)
    check_csrf(request, str((await form_fields(request)).get("csrf", "")))
    resp = web.HTTPSeeOther("/console/login")
    await end_session(request, resp)
    raise resp


def require_key_set(request: web.Request) -> None:
    if not request.app[SETTINGS].api_key:
        raise web.HTTPNotFound(text="the console is off: set API_KEY to turn it on")


async def calls_page(request: web.Request) -> web.Response:
    require_key_set(request)
    key = request.query.get("key")
    if key is not None:  # ?key= once: trade it for the cookie, and drop it from the address bar
        if not key_ok(request, key):
            raise web.HTTPSeeOther("/console/login")
        resp = web.HTTPSeeOther("/console")
        issue_session(request, resp)
        raise resp
    require_session(request)
    now = time.monotonic()
    live = [
        {"call_sid": sid, "caller": s.conversation.caller, "state": s.state.name.lower(), "turns": s._turn_no,
         "seconds": round(now - s._t_start)}
        for sid, s in request.app[CALLS].items()
    ]
    recent = await request.app[STORE].calls(limit=100)
    return _page(request, "calls.html", live=live, calls=recent)


async def call_page(request: web.Request) -> web.Response:
    require_session(request)
    rec = await request.app[STORE].call(request.match_info["sid"])
    if rec is None:
        raise web.HTTPNotFound(text="no such call")
    lat = [t.latency_ms for t in rec.turns if t.latency_ms is not None]
    summary = {"turns": len(rec.turns), "median": sorted(lat)[len(lat) // 2] if lat else None, "worst": max(lat) if lat else None}
    return _page(request, "call.html", call=rec, chart=latency_svg(rec.turns), summary=summary)


def _status_filter(request: web.Request) -> str | None:
    status = request.query.get("status") or None
    if status is not None and status not in MESSAGE_STATUSES:
        raise web.HTTPBadRequest(text=f"status: expected one of {', '.join(MESSAGE_STATUSES)}")
    return status


async def messages_page(request: web.Request) -> web.Response:
    require_session(request)
    status = _status_filter(request)
    found = await request.app[STORE].messages(status=status, limit=500)
    return _page(request, "messages.html", messages=found, status=status, statuses=MESSAGE_STATUSES)


async def mark_handled(request: web.Request) -> web.Response:
    require_session(request)
    form = await form_fields(request)
    check_csrf(request, str(form.get("csrf", "")))
    try:
        mid = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(text="bad message id") from None
    await request.app[STORE].mark_handled(mid)
    back = str(form.get("back", ""))
    raise web.HTTPSeeOther(back if back.startswith("/console/messages") else "/console/messages")


def _csv_cell(v) -> str:
    """No formula injection: a caller's words never start a cell with = + - @."""
    s = visible(str(v))
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


async def messages_csv(request: web.Request) -> web.Response:
    require_session(request)
    found = await request.app[STORE].messages(status=_status_filter(request), limit=100000)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "created_at", "status", "urgent", "name", "callback_number", "about", "caller", "call_sid"])
    for m in found:
        w.writerow([m.id, _when(request.app, m.created_at), m.status, "yes" if m.urgent else "no",
                    *(_csv_cell(x) for x in (m.name, m.callback_number, m.about, m.caller, m.call_sid))])
    return web.Response(text=buf.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="messages.csv"', "Cache-Control": "no-store"})


async def providers_page(request: web.Request) -> web.Response:
    require_session(request)
    return _page(request, "providers.html", health=health_report(request.app))


def setup(app: web.Application) -> None:
    login_limit.install(app)
    r = app.router
    r.add_get("/console", calls_page)
    r.add_get("/console/login", login_form)
    r.add_post("/console/login", login)
    r.add_post("/console/logout", logout)
    r.add_get("/console/calls/{sid}", call_page)
    r.add_get("/console/messages", messages_page)
    r.add_get("/console/messages.csv", messages_csv)
    r.add_post("/console/messages/{id}/handled", mark_handled)
    r.add_get("/console/providers", providers_page)
    r.add_static("/console/static", WEB / "static")
