"""Issue 21 item 3: the form routes take urlencoded UTF-8 forms only, and nothing a
client sends produces a traceback (or a 500) on any route.

Every route of the app is fuzzed with odd content types, truncated multipart, bad
charsets and encodings, over a real socket through the real edge (bot.shell.server), and
the log is checked for tracebacks and ERROR lines.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

import aiohttp
import pytest

from bot import logs
from bot.settings import Settings
from tests.test_attacks_http import KEY, hostport, serving

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

FORM_ROUTES = ["/twilio/voice", "/twilio/status", "/twilio/after", "/console/login", "/console/logout",
               "/console/messages/1/handled"]
OTHER_ROUTES = ["/v1/orchestrate", "/healthz", "/readyz", "/livez", "/metrics", "/phone", "/phone/ws", "/console",
                "/console/messages", "/console/messages.csv", "/console/providers", "/console/calls/CA1",
                "/twilio/media", "/twilio/prompt/busy.wav", "/nowhere"]
MP = "multipart/form-data; boundary=xx"
BODIES = [
    (b'--xx\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\nCA', MP),  # 127-byte-style truncated multipart
    (b'--xx\r\nContent-Disposition: form-data; name="a"; filename="f"\r\n\r\nb\r\n--xx--\r\n', MP),
    (b'--xx\r\nabc', "multipart/form-data"),  # no boundary parameter
    (b'--xx\r\n\r\n\r\n--xx--\r\n', MP),
    (b"--xx--\r\n", 'multipart/form-data; boundary="' + "x" * 200 + '"'),
    (b"a=b", "application/x-www-form-urlencoded; charset=nope"),
    (b"a=b", "application/x-www-form-urlencoded; charset=utf-7"),
    (b"a=\xff\xfe", "application/x-www-form-urlencoded"),
    (b"a=%ff%fe", "application/x-www-form-urlencoded"),
    (b"a=%zz%", "application/x-www-form-urlencoded"),
    ("&".join(f"f{i}=1" for i in range(500)).encode(), "application/x-www-form-urlencoded"),
    (b"\x00\x01\x02=\x03", "application/x-www-form-urlencoded"),
    (b'{"CallSid": "CA1"}', "application/json"),
    (b"<xml/>", "text/xml; charset=\u00e9"),
    (b"junk", ";;;"),
    (b"junk", "application/x-www-form-urlencoded; charset"),
    (b"", "multipart/mixed; boundary="),
    (b"a=b", ""),
]


def settings_for(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, twilio_validate=True, twilio_auth_token="twilio-token", api_key=KEY)


async def raw(url: str, head: str, body: bytes, close_after: bool = False) -> bytes:
    host, port = hostport(url)
    r, w = await asyncio.open_connection(host, port)
    w.write(head.encode("latin-1") + body)
    await w.drain()
    if close_after:
        w.close()
        return b""
    try:
        async with asyncio.timeout(5):
            return await r.read(65536)
    finally:
        w.close()


def assert_clean(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad[:3]]


async def test_form_routes_answer_415_or_400_to_anything_but_a_urlencoded_utf8_form(tmp_path, caplog):
    async with serving(settings_for(tmp_path)) as (_app, url), aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO):
            for path, (body, ctype) in itertools.product(FORM_ROUTES, BODIES):
                caplog.clear()
                async with http.post(url + path, data=body, headers={"Content-Type": ctype} if ctype else {}) as r:
                    text = await r.text()
                assert r.status in (400, 401, 403, 404, 413, 415, 429), (path, ctype, r.status, text[:100])
                if r.status in (400, 415):
                    assert r.headers["Content-Type"].startswith("application/json")
                    lines = [x for x in caplog.records if x.name == "handlers.forms"]
                    assert len(lines) == 1 and "\n" not in lines[0].getMessage()
                assert_clean(caplog)


async def test_a_real_urlencoded_form_still_works(tmp_path):
    async with serving(settings_for(tmp_path)) as (_app, url), aiohttp.ClientSession() as http:
        async with http.post(url + "/console/login", data={"key": KEY}, allow_redirects=False) as r:
            assert r.status == 303 and "phonebot_session" in r.cookies
        async with http.post(url + "/console/login", data="key=" + KEY, allow_redirects=False,
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}) as r:
            assert r.status == 303


@pytest.mark.parametrize("seed", range(3))
async def test_fuzzing_every_route_gives_no_500_and_no_traceback(tmp_path, caplog, seed):
    logs.quiet_protocol_errors()  # as the server's logging set-up does
    rnd = random.Random(seed)
    ctypes = [c for _, c in BODIES] + ["audio/wav", "application/octet-stream", "text/plain", "audio/x-wav; rate=x"]
    async with serving(settings_for(tmp_path)) as (_app, url), aiohttp.ClientSession() as http:
        with caplog.at_level(logging.INFO):
            for path in FORM_ROUTES + OTHER_ROUTES:
                for _ in range(8):
                    body, _c = rnd.choice(BODIES)
                    body = body[: rnd.randrange(len(body) + 1)] if rnd.random() < 0.5 else body
                    headers = {"Content-Type": rnd.choice(ctypes), "Authorization": rnd.choice([f"Bearer {KEY}", "Bearer x", "Basic ?"]),
                               "Cookie": rnd.choice(["phonebot_session=1.2.3", "phonebot_session=\u00e9", "a=b"]),
                               "Origin": rnd.choice(["https://evil.example", "null", "http://x"])}
                    method = rnd.choice(["POST", "GET", "PUT"])
                    async with http.request(method, url + path, data=body, headers=headers) as r:
                        await r.read()
                        assert r.status < 500, (method, path, headers, body[:60], r.status)
            # by hand: a truncated body (Content-Length more than is sent, then the client goes)
            for path in FORM_ROUTES + ["/v1/orchestrate"]:
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {MP}\r\nContent-Length: 900\r\n\r\n"
                await raw(url, head, BODIES[0][0], close_after=True)
                out = await raw(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                                     f"Authorization: Bearer {KEY}\r\n"
                                     f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\n\r\n", b"\x1f\x8bxx")
                assert out.startswith(b"HTTP/1.1 4"), out[:60]
            await asyncio.sleep(0.2)
        assert_clean(caplog)
