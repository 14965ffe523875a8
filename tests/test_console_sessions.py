"""Console sessions at their edges (survivors of a mutation run over handlers/session_auth.py):
a form's CSRF token belongs to one session, an API caller without a session gets the JSON
error, and logging out without a cookie is harmless."""

from __future__ import annotations

from bot.store import NewMessage
from handlers.session_auth import COOKIE
from handlers.storage import STORE
from tests.test_console import KEY, csrf_of, make_app


async def _session(client) -> str:
    r = await client.post("/console/login", data={"key": KEY}, allow_redirects=False)
    assert r.status == 303
    return r.cookies[COOKIE].value


async def test_a_csrf_token_from_another_session_is_refused(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    mine = await _session(client)
    token_a = await csrf_of(client)
    client.session.cookie_jar.clear()
    theirs = await _session(client)
    assert theirs != mine
    token_b = await csrf_of(client)
    assert token_a != token_b  # bound to the session cookie, not one token for everyone
    mid = await client.app[STORE].save_message(NewMessage(call_sid="CA9", caller="+15550009", name="Di", callback_number="5550009", about="x"))
    r = await client.post(f"/console/messages/{mid}/handled", data={"csrf": token_a}, allow_redirects=False)
    assert r.status == 403 and (await client.app[STORE].message(mid)).status == "new"
    r = await client.post(f"/console/messages/{mid}/handled", data={"csrf": token_b}, allow_redirects=False)
    assert r.status == 303 and (await client.app[STORE].message(mid)).status == "handled"


async def test_an_api_caller_without_a_session_gets_the_json_error_and_a_browser_the_login(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    r = await client.get("/console/messages", allow_redirects=False)
    assert r.status == 401 and r.content_type == "application/json"
    assert (await r.json())["error"]["code"] == "unauthorized"
    r = await client.get("/console/messages", headers={"accept": "text/html,application/xhtml+xml"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/login"


async def test_logging_out_without_a_session_is_harmless_and_clears_the_cookie(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    r = await client.post("/console/logout", allow_redirects=False)
    assert r.status == 401  # no session to end: refused, never a 500
    await _session(client)
    html_token = await csrf_of(client)
    r = await client.post("/console/logout", data={"csrf": html_token}, allow_redirects=False)
    assert r.status == 303
    set_cookie = r.headers.get("Set-Cookie", "")
    assert set_cookie.startswith(COOKIE + "=") and "Path=/" in set_cookie
    assert (await client.get("/console/messages.csv")).status == 401
