"""/console: the owner's pages. Server-rendered (Jinja2, autoescaped), no script needed.

Live calls, recent calls with their outcome (search by number and outcome), a call's
page (its transcript turn by turn when stored, each turn's latency as a chart, the
message it left, where it was transferred), messages (filter by status, mark handled,
CSV export), providers and circuits. Times are in the business's zone, numbers written
as the owner dials them (handlers/console_format.py). Behind the API key through the
session cookie of handlers/session_auth.py.
"""

from __future__ import annotations

import csv
import io
import re

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.assets import WEB
from bot.profile import cached_profile
from bot.store.api import CALL_OUTCOMES, MESSAGE_STATUSES, CallRecord
from bot.store.transcripts import LIVE
from bot.text_safety import visible
from handlers import login_limit
from handlers.console_chart import latency_svg
from handlers.console_format import Owner, length, person
from handlers.forms import form_fields
from handlers.health import health_report
from handlers.session_auth import check_csrf, csrf_token, end_session, issue_session, key_ok, require_session, session_valid
from handlers.state import CALLS, PROMPTS, SETTINGS
from handlers.storage import STORE

# every value a template prints goes through ``visible`` before it is escaped: a caller's
# U+202E or U+009B is shown as an escape, never rendered (bot/text_safety.py)
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True, trim_blocks=True,
                          lstrip_blocks=True, finalize=lambda v: visible(v) if isinstance(v, str) and not isinstance(v, Markup) else v)


SEARCH_MAX = 40  # characters of a number search
CALL_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Twilio's CA..., the softphone's BR...


def _owner(app: web.Application) -> Owner:
    """The business's zone and country (its business file, cached)."""
    settings = app[SETTINGS]
    return Owner.of(cached_profile(settings.business_file), settings.transfer_number)


def _page(request: web.Request, template: str, **ctx) -> web.Response:
    owner = _owner(request.app)
    ctx.update(business=cached_profile(request.app[SETTINGS].business_file).name, when=owner.when, phone=owner.phone, person=person, length=length, zone=owner.zone_name,
               csrf=csrf_token(request) if session_valid(request) else "", path=request.path)
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
    live = request.app[CALLS].snapshot()
    number, outcome = _call_search(request)
    recent = await request.app[STORE].find_calls(number=number, outcome=outcome, limit=200)
    return _page(request, "calls.html", live=live, calls=recent, number=number, outcome=outcome, outcomes=(*CALL_OUTCOMES, LIVE))


def _call_search(request: web.Request) -> tuple[str, str | None]:
    """?number= (any format: its digits are matched) and ?outcome= (one of CALL_OUTCOMES, or live)."""
    number = request.query.get("number", "").strip()[:SEARCH_MAX]
    outcome = request.query.get("outcome") or None
    if outcome is not None and outcome not in (*CALL_OUTCOMES, LIVE):
        raise web.HTTPBadRequest(text=f"outcome: expected one of {', '.join((*CALL_OUTCOMES, LIVE))}")
    return number, outcome


def _conversation(rec: CallRecord) -> list[dict]:
    """The transcript grouped by turn, each turn with its record (latency, outcome); turn 0
    is what the bot said before the caller's first turn (the greeting)."""
    records = {t.n: t for t in rec.turns}
    groups: dict[int, dict] = {}
    for line in rec.transcript:
        g = groups.setdefault(line.turn, {"n": line.turn, "turn": records.get(line.turn), "lines": []})
        g["lines"].append(line)
    return [groups[n] for n in sorted(groups)]


async def call_page(request: web.Request) -> web.Response:
    require_session(request)
    store = request.app[STORE]
    sid = request.match_info["sid"]
    rec = await store.call(sid) if CALL_SID.fullmatch(sid) else None  # a NUL or a 5000-character "sid" never reaches the database
    if rec is None:
        raise web.HTTPNotFound(text="no such call")
    lat = [t.latency_ms for t in rec.turns if t.latency_ms is not None]
    summary = {"turns": len(rec.turns), "median": sorted(lat)[len(lat) // 2] if lat else None, "worst": max(lat) if lat else None}
    settings = request.app[SETTINGS]
    return _page(request, "call.html", call=rec, chart=latency_svg(rec.turns), summary=summary, conversation=_conversation(rec),
                 messages=await store.messages_of_call(rec.call_sid), storing=settings.store_transcripts,
                 retention_days=settings.transcript_retention_days)


def _status_filter(request: web.Request) -> str | None:
    status = request.query.get("status") or None
    if status is not None and status not in MESSAGE_STATUSES:
        raise web.HTTPBadRequest(text=f"status: expected one of {', '.join(MESSAGE_STATUSES)}")
    return status


async def messages_page(request: web.Request) -> web.Response:
    require_session(request)
    status = _status_filter(request)
    found = await request.app[STORE].messages(status=status, limit=500)
    delivery = await request.app[STORE].delivery([m.id for m in found])
    return _page(request, "messages.html", messages=found, status=status, statuses=MESSAGE_STATUSES, delivery=delivery)


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
    owner = _owner(request.app)
    for m in found:
        w.writerow([m.id, owner.stamp(m.created_at), m.status, "yes" if m.urgent else "no",
                    *(_csv_cell(x) for x in (m.name, m.callback_number, m.about, m.caller, m.call_sid))])
    return web.Response(text=buf.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="messages.csv"', "Cache-Control": "no-store"})


async def providers_page(request: web.Request) -> web.Response:
    require_session(request)
    return _page(request, "providers.html", health=health_report(request.app), texts=request.app[PROMPTS].text)


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
