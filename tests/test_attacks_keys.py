"""Issue 21 items 6, 9, 10 and the untried ones on the owner's doors: logout revokes the
session in the store (two instances on one database agree); /phone and the console
carry a CSP with frame-ancestors 'none'; a foreign or https Origin is refused by a
plain-http server; the cookie's Secure flag follows PUBLIC_URL (or a trusted TLS
proxy); /healthz says only ok/degraded to anyone without the key; an IPv6 client
rotating through its /64 behind a trusted proxy is one address; and a real TLS proxy
in front, named in TRUSTED_PROXIES, gets the client's address and scheme right."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web

from handlers.login_limit import PER_ADDRESS
from handlers.session_auth import COOKIE
from tests.test_console import KEY, csrf_of, make_app


async def login(client) -> str:
    r = await client.get(f"/console?key={KEY}", allow_redirects=False)
    assert r.status == 303
    return r.cookies[COOKIE].value


# ---------------------------------------------------------------- 6. logout revokes, across instances


async def test_logout_revokes_the_cookie_on_every_instance_sharing_the_store(aiohttp_client, settings):
    a = await aiohttp_client(make_app(settings))
    b = await aiohttp_client(make_app(settings))  # a second instance on the same database (DATA_DIR's SQLite)
    cookie = await login(a)
    copy = {"Cookie": f"{COOKIE}={cookie}"}  # what a thief copied before the owner logged out
    for c in (a, b):
        assert (await c.get("/console/messages.csv", headers=copy)).status == 200
    r = await a.post("/console/logout", data={"csrf": await csrf_of(a)}, allow_redirects=False)
    assert r.status == 303
    for c in (a, b):
        assert (await c.get("/console/messages.csv", headers=copy)).status == 401
        assert (await c.get("/phone", headers=copy)).status == 401
        assert set(await (await c.get("/healthz", headers=copy)).json()) == {"status"}
    fresh = await login(b)  # a new login works at once
    assert (await a.get("/console/messages.csv", headers={"Cookie": f"{COOKIE}={fresh}"})).status == 200


# ---------------------------------------------------------------- 9. CSP, Origin, Secure


async def test_phone_and_console_answers_carry_a_csp_that_forbids_framing(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    await login(client)
    html = await (await client.get("/phone")).text()
    assert "<style" not in html and " style=" not in html  # no inline styles: 'self' covers the page
    for path in ("/phone", "/phone/phone.js", "/console", "/console/login", "/console/messages", f"/phone?key={KEY}x"):
        r = await client.get(path, allow_redirects=False)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and r.headers.get("X-Frame-Options") == "DENY", path
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp, path
    csp = (await client.get("/phone")).headers["Content-Security-Policy"]
    assert "style-src 'self';" in csp and "script-src 'self'" in csp and "connect-src 'self' ws://" in csp


async def test_a_foreign_or_https_origin_is_refused_by_a_plain_http_server(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings))
    await login(client)
    host = f"{client.server.host}:{client.server.port}"
    for origin in (f"https://{host}", "https://evil.example", f"http://{host}.evil.example", "null", f"ws://{host}"):
        r = await client.post("/console/logout", data={"csrf": await csrf_of(client)}, headers={"Origin": origin}, allow_redirects=False)
        assert r.status == 403 and (await r.json())["error"]["code"] == "bad_origin", origin
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await client.ws_connect("/phone/ws", headers={"Origin": origin})
        assert e.value.status == 403
    ws = await client.ws_connect("/phone/ws", headers={"Origin": f"http://{host}"})  # its own page
    await ws.close()
    r = await client.post("/console/logout", data={"csrf": await csrf_of(client)}, headers={"Origin": f"http://{host}"}, allow_redirects=False)
    assert r.status == 303


async def test_with_public_url_only_its_origin_is_accepted(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings, public_url="https://bot.example.com"))
    r = await client.get(f"/console?key={KEY}", allow_redirects=False)
    assert r.cookies[COOKIE]["secure"]  # the cookie follows PUBLIC_URL's scheme
    cookie = {"Cookie": f"{COOKIE}={r.cookies[COOKIE].value}"}  # (the test's jar keeps a Secure cookie off plain http)
    host = f"{client.server.host}:{client.server.port}"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/phone/ws", headers={"Origin": f"http://{host}", **cookie})
    ws = await client.ws_connect("/phone/ws", headers={"Origin": "https://bot.example.com", **cookie})
    await ws.close()


async def test_the_cookie_is_secure_only_when_browsers_reach_us_over_https(aiohttp_client, settings):
    for kw, headers, secure in [
        ({}, {}, False),
        ({"public_url": "http://bot.example.com"}, {"X-Forwarded-Proto": "https"}, False),
        ({}, {"X-Forwarded-Proto": "https"}, False),  # a client's say-so
        ({"trusted_proxies": ("127.0.0.1",)}, {"X-Forwarded-Proto": "https"}, True),  # a TLS proxy we trust
        ({"public_url": "https://bot.example.com"}, {}, True),
    ]:
        client = await aiohttp_client(make_app(settings, **kw))
        r = await client.get(f"/console?key={KEY}", headers=headers, allow_redirects=False)
        assert bool(r.cookies[COOKIE]["secure"]) is secure, (kw, headers)


# ---------------------------------------------------------------- 10. /healthz


async def test_public_health_says_only_ok_or_degraded_and_the_key_shows_the_detail(aiohttp_client, settings):
    s = settings.with_(trial=False)
    client = await aiohttp_client(make_app(s))
    public = await (await client.get("/healthz")).json()
    assert set(public) == {"status"} and public["status"] in ("ok", "degraded")
    detail = await (await client.get("/healthz", headers={"Authorization": f"Bearer {KEY}"})).json()
    assert detail["status"] == public["status"] and "worker" in detail and "connections" in detail
    assert set(await (await client.get("/healthz", headers={"Authorization": "Bearer wrong-key-0123456789"})).json()) == {"status"}
    cookie = await login(client)
    assert "stages" in await (await client.get("/healthz", headers={"Cookie": f"{COOKIE}={cookie}"})).json()
    opened = await aiohttp_client(make_app(s.with_(data_dir=s.data_dir / "p", health_detail="public")))
    assert "worker" in await (await opened.get("/healthz")).json()


def test_health_detail_setting_is_read_and_checked():
    from bot.settings import Settings, SettingsError

    assert Settings.from_env({"TWILIO_VALIDATE": "false", "HEALTH_DETAIL": "public"}).health_detail == "public"
    assert Settings.from_env({"TWILIO_VALIDATE": "false"}).health_detail == "key"
    with pytest.raises(SettingsError, match="HEALTH_DETAIL"):
        Settings.from_env({"TWILIO_VALIDATE": "false", "HEALTH_DETAIL": "everyone"})


# ---------------------------------------------------------------- IPv6 /64 rotation, a real TLS proxy


async def test_an_ipv6_client_rotating_through_its_64_is_one_address_behind_a_trusted_proxy(aiohttp_client, settings):
    client = await aiohttp_client(make_app(settings.with_(trial=False, trusted_proxies=("127.0.0.1",))))

    async def guess(ip: str, key: str = "wrong-key-0123456789") -> int:
        r = await client.post("/console/login", data={"key": key}, headers={"X-Forwarded-For": ip}, allow_redirects=False)
        return r.status

    got = [await guess(f"2001:db8:aa:bb:{i:x}:{i * 7:x}::{i + 1:x}") for i in range(PER_ADDRESS + 5)]
    assert got == [401] * PER_ADDRESS + [429] * 5
    assert await guess("2001:db8:aa:bc::1") == 401  # the next /64 is someone else
    assert await guess("2001:db8:aa:bb::99", KEY) == 303  # and the owner's key still opens


def _self_signed(tmp_path) -> ssl.SSLContext:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
async def test_behind_a_real_tls_proxy_in_trusted_proxies_the_client_and_scheme_are_right(aiohttp_server, settings, tmp_path):
    bot = await aiohttp_server(make_app(settings.with_(trial=False, trusted_proxies=("127.0.0.1",))))
    upstream = f"http://127.0.0.1:{bot.port}"
    seen_peers: list[str] = []

    async def proxy(request: web.Request) -> web.StreamResponse:
        """A TLS-terminating reverse proxy as nginx is set up: it appends the peer to
        X-Forwarded-For and says the scheme in X-Forwarded-Proto."""
        seen_peers.append(request.remote or "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length", "x-forwarded-proto")}
        headers["X-Forwarded-For"] = ", ".join(filter(None, [request.headers.get("X-Forwarded-For"), fake_client[0]]))
        headers["X-Forwarded-Proto"] = "https"
        async with aiohttp.ClientSession() as http, http.request(request.method, upstream + request.path_qs, headers=headers,
                                                                 data=await request.read(), allow_redirects=False) as r:
            out = web.Response(status=r.status, body=await r.read())
            for k, v in r.headers.items():
                if k.lower() in ("set-cookie", "location", "retry-after", "content-type", "content-security-policy"):
                    out.headers.add(k, v)
            return out

    fake_client = ["203.0.113.7"]  # the address the proxy saw (one TCP peer on loopback plays several clients)
    papp = web.Application()
    papp.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(papp)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as http:
            url = f"https://127.0.0.1:{port}/console/login"
            for i in range(PER_ADDRESS + 1):  # a guesser, spoofing X-Forwarded-For on the left: counted as itself
                async with http.post(url, data={"key": f"guess-{i}-0123456789"}, headers={"X-Forwarded-For": f"198.51.100.{i}"},
                                     allow_redirects=False) as r:
                    assert r.status == (401 if i < PER_ADDRESS else 429)
            fake_client[0] = "203.0.113.8"  # the owner, from another address
            async with http.post(url, data={"key": "typo-0123456789"}, allow_redirects=False) as r:
                assert r.status == 401  # its own bucket, not the guesser's
            async with http.post(url, data={"key": KEY}, allow_redirects=False) as r:
                assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]  # https at the proxy: a Secure cookie
    finally:
        await runner.cleanup()
    assert seen_peers and all(p == "127.0.0.1" for p in seen_peers)
    await asyncio.sleep(0)


async def test_revocations_are_kept_by_the_store_until_the_cookie_would_expire(db_url, tmp_path):
    import time

    from bot.store import SqlStore

    a = await SqlStore.open(database_url=db_url, data_dir=tmp_path)
    b = await SqlStore.open(database_url=db_url, data_dir=tmp_path)  # another process or instance
    try:
        assert not await b.session_revoked("s1")
        await a.revoke_session("s1", time.time() + 3600)
        await asyncio.gather(a.revoke_session("s2", time.time() + 3600), b.revoke_session("s2", time.time() + 3600))  # twice at once
        assert await b.session_revoked("s1") and await a.session_revoked("s2")
        await a.revoke_session("old", time.time() - 1)  # past its expiry: swept by the next revocation
        await b.revoke_session("s3", time.time() + 3600)
        assert not await a.session_revoked("old") and await a.session_revoked("s1")
    finally:
        await a.close()
        await b.close()
