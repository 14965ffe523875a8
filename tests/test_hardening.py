"""Hardening gaps found in review, each replayed against the real server on 127.0.0.1:
a softphone socket that sends audio faster than real time, key guessing on the console
login and on /v1's bearer key (and clients behind a trusted proxy), short API keys,
oversize webhook forms, the transfer's ring time, and a caller's message cut off by a
hang-up on the LLM path."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from bot.carriers.browser.phone import BURST_S, MAX_AUDIO_BYTES, RealTime
from handlers.login_limit import ADDRESS_REFILL_S, GLOBAL, LOGIN_LIMIT, PER_ADDRESS, LoginLimit
from handlers.state import CALLS, METRICS
from tests.conftest import eventually
from tests.test_phone import login, phone_app

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- 1. softphone audio pace


def test_audio_may_run_ahead_of_the_clock_only_by_the_burst():
    now = [0.0]
    pace = RealTime(burst=1.0, clock=lambda: now[0])
    for _ in range(500):  # ten seconds of a microphone: 20 ms every 20 ms
        assert pace.take(0.02)
        now[0] += 0.02
    now[0] += 0.9  # the loop stalled; the frames queued meanwhile arrive at once
    assert all(pace.take(0.02) for _ in range(45))
    now[0] += 5.0  # five quiet seconds earn no more than the burst
    assert all(pace.take(0.2) for _ in range(5))
    assert not pace.take(0.2)


async def refused_close(ws) -> aiohttp.WSMessage:
    """Read (greeting audio, events) until the server closes the socket."""
    async with asyncio.timeout(15):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return msg


async def test_audio_faster_than_real_time_closes_the_softphone_call(aiohttp_client, settings, caplog):
    app, p = phone_app(settings)
    client = await aiohttp_client(app)
    await login(client)
    ws = await client.ws_connect("/phone/ws")
    await ws.receive()  # the call is up
    for _ in range(25):  # real time first: one 20 ms frame at a time, paced
        await ws.send_bytes(b"\x00\x01" * 160)
        await asyncio.sleep(0.02)
    assert app[CALLS]
    sent = 0.0
    with caplog.at_level(logging.WARNING, logger="bot.carriers.browser"):
        while not ws.closed and sent < 60:  # 200 ms messages as fast as the socket takes them
            try:
                await ws.send_bytes(b"\x00\x7f" * (MAX_AUDIO_BYTES // 2))
            except ConnectionError:
                break
            sent += 0.2
        msg = await refused_close(ws)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert sent > BURST_S  # the burst was allowed, then no more
        await eventually(lambda: not app[CALLS])
    assert app[METRICS].protocol_errors.labels("browser_audio_too_fast")._value.get() == 1
    refused = [r for r in caplog.records if r.getMessage() == "browser audio refused, closing"]
    assert len(refused) == 1 and set(refused[0].fields) == {"call_sid", "reason"}  # no payload in the log
    assert refused[0].fields["reason"] == "browser_audio_too_fast"
    assert p.stt.calls == [] or all(n < 16000 * 2 * 10 for n, _ in p.stt.calls)  # never minutes of "speech"


async def test_a_message_longer_than_200_ms_closes_the_softphone_call(aiohttp_client, settings):
    app, _ = phone_app(settings)
    client = await aiohttp_client(app)
    await login(client)
    for size, reason, code in (
        (MAX_AUDIO_BYTES + 2, "browser_audio_too_long", aiohttp.WSCloseCode.MESSAGE_TOO_BIG),
        (64 * 1024, "browser_bad_frame", aiohttp.WSCloseCode.MESSAGE_TOO_BIG),  # refused by aiohttp before buffering
    ):
        ws = await client.ws_connect("/phone/ws")
        await ws.receive()
        await ws.send_bytes(b"\x00\x7f" * (size // 2))
        msg = await refused_close(ws)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == code, (reason, msg)
        await eventually(lambda: not app[CALLS])
        assert app[METRICS].protocol_errors.labels(reason)._value.get() == 1


# ---------------------------------------------------------------- 2. key guessing at the login


def test_wrong_keys_per_address_and_in_all_are_limited():
    now = [1000.0]
    limit = LoginLimit(clock=lambda: now[0])
    for _ in range(PER_ADDRESS):
        assert limit.retry_after("10.0.0.1") == 0
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == ADDRESS_REFILL_S and limit.retry_after("10.0.0.2") == 0
    now[0] += ADDRESS_REFILL_S  # one more guess a refill later, not ten
    assert limit.retry_after("10.0.0.1") == 0
    limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") > 0
    for i in range(PER_ADDRESS):  # an IPv6 host hopping through its /64 is one address
        limit.failed(f"2001:db8:1:2::{i + 1:x}")
    assert limit.retry_after("2001:db8:1:2:ffff::7") > 0 and limit.retry_after("2001:db8:1:3::1") == 0
    assert limit.retry_after("::ffff:10.0.0.1") > 0 and limit.retry_after("::ffff:10.0.0.2") == 0  # mapped IPv4
    for i in range(GLOBAL):  # many addresses together
        limit.failed(f"10.1.{i // 250}.{i % 250}")
    assert limit.retry_after("10.9.9.9") > 0  # a fresh address waits too


def login_app(settings, now: list[float]):
    from tests.test_console import KEY, make_app

    app = make_app(settings)
    app[LOGIN_LIMIT] = LoginLimit(clock=lambda: now[0])  # a clock the test moves
    return app, KEY


async def test_key_guessing_gets_429_with_retry_after_and_the_right_key_still_works(aiohttp_client, settings, caplog):
    now = [0.0]
    app, key = login_app(settings, now)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.WARNING, logger="handlers.login_limit"):
        for i in range(PER_ADDRESS):
            r = await client.post("/console/login", data={"key": f"guess-{i:04d}-0123456789"}, allow_redirects=False)
            assert r.status == 401
        wrong = "still-guessing-0123456789"
        for attempt in (
            client.post("/console/login", data={"key": wrong}, allow_redirects=False),
            client.get(f"/console?key={wrong}", allow_redirects=False),
            client.get(f"/phone?key={wrong}", allow_redirects=False),  # one limit for every door
        ):
            r = await attempt
            assert r.status == 429 and int(r.headers["Retry-After"]) == ADDRESS_REFILL_S
            assert "phonebot_session" not in r.cookies
        for attempt in (  # the right key is compared first: it opens every door at once, limit or not
            client.post("/console/login", data={"key": key}, allow_redirects=False),
            client.get(f"/console?key={key}", allow_redirects=False),
            client.get(f"/phone?key={key}", allow_redirects=False),
        ):
            r = await attempt
            assert r.status == 303 and "phonebot_session" in r.cookies
    paused = [r for r in caplog.records if r.name == "handlers.login_limit"]
    assert len(paused) == 1 and key not in paused[0].getMessage() and key not in str(paused[0].fields)


async def test_guessing_from_many_addresses_meets_the_global_limit(aiohttp_server, settings):
    now = [0.0]
    app, key = login_app(settings, now)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = str(server.make_url("/console/login"))
    statuses: list[int] = []
    for n in range(GLOBAL // PER_ADDRESS):  # ten addresses, each inside its own limit
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0))) as http:
            for i in range(PER_ADDRESS):
                async with http.post(url, data={"key": f"guess-{n}-{i}-0123456789"}, allow_redirects=False) as r:
                    statuses.append(r.status)
    assert statuses == [401] * GLOBAL
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.99", 0))) as http:
        async with http.post(url, data={"key": "fresh-address-guess-0123"}, allow_redirects=False) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        async with http.post(url, data={"key": key}, allow_redirects=False) as r:
            assert r.status == 303  # the owner is not locked out by the crowd


# ---------------------------------------------------------------- 2b. key guessing on /v1, clients behind a proxy


def api_app(settings, now: list[float], **kw):
    """/v1 behind its bearer key (not trial mode), with a limiter on a clock the test moves."""
    from tests.test_attacks_http import KEY, app_for

    app = app_for(settings.with_(trial=False, api_key=KEY, **kw))
    app[LOGIN_LIMIT] = LoginLimit(clock=lambda: now[0])
    return app, KEY


async def call_api(client, key: str | None, **headers: str):
    from tests.test_attacks_http import WAV1S

    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await client.post("/v1/orchestrate", data=WAV1S, headers={"Content-Type": "audio/wav", **headers})


async def refused_for_guessing(r) -> bool:
    if r.status != 429:
        return False
    err = (await r.json())["error"]
    assert err["code"] == "too_many_attempts" and "try again" in err["message"]
    assert int(r.headers["Retry-After"]) >= 1 and r.headers.get("Connection", "").lower() == "close"
    return True


async def test_api_key_guessing_gets_429_in_the_api_format_and_other_addresses_are_unaffected(aiohttp_server, settings, caplog):
    now = [0.0]
    app, key = api_app(settings, now)
    server = await aiohttp_server(app, host="127.0.0.1")

    def from_(address: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(str(server.make_url("/")), connector=aiohttp.TCPConnector(local_addr=(address, 0)))

    async with from_("127.0.0.1") as attacker, from_("127.0.0.2") as bystander:
        assert (await call_api(attacker, key)).status == 200  # the right key before the flood: nothing counted
        for _ in range(3 * PER_ADDRESS):  # no Authorization header guesses nothing and is not counted
            assert (await call_api(attacker, None)).status == 401
        with caplog.at_level(logging.WARNING, logger="handlers.login_limit"):
            for i in range(PER_ADDRESS):
                r = await call_api(attacker, f"guess-{i:04d}-0123456789")
                assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
            r = await call_api(attacker, "one-more-guess-0123456789")
            assert await refused_for_guessing(r) and int(r.headers["Retry-After"]) == ADDRESS_REFILL_S
            assert (await call_api(attacker, key)).status == 200  # the right key is compared first: never limited
        paused = [r for r in caplog.records if r.name == "handlers.login_limit"]
        assert len(paused) == 1 and paused[0].fields["address"] == "127.0.0.1" and key not in str(paused[0].fields)
        async with attacker.post("/console/login", data={"key": "wrong-at-the-console-0123"}, allow_redirects=False) as r:
            assert r.status == 429  # one limiter for every door that takes the key
        assert (await call_api(bystander, key)).status == 200  # another address is unaffected
        r = await call_api(bystander, "wrong-but-counted-0123456789")
        assert r.status == 401
        now[0] += ADDRESS_REFILL_S
        assert (await call_api(attacker, key)).status == 200


async def test_api_guessing_from_many_addresses_meets_the_global_limit(aiohttp_server, settings):
    now = [0.0]
    app, key = api_app(settings, now)
    server = await aiohttp_server(app, host="127.0.0.1")
    statuses: list[int] = []
    for n in range(GLOBAL // PER_ADDRESS):  # ten addresses, each inside its own limit
        async with aiohttp.ClientSession(str(server.make_url("/")), connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0))) as http:
            for i in range(PER_ADDRESS):
                statuses.append((await call_api(http, f"guess-{n}-{i}-0123456789")).status)
    assert statuses == [401] * GLOBAL
    async with aiohttp.ClientSession(str(server.make_url("/")), connector=aiohttp.TCPConnector(local_addr=("127.0.0.99", 0))) as http:
        assert await refused_for_guessing(await call_api(http, "fresh-address-guess-0123"))
        assert (await call_api(http, key)).status == 200  # the owner is not locked out by the crowd


PROBE = "probe-guess-0123456789"  # a wrong key that asks whether a bucket is empty (429) or not (401)


async def flood(client, key: str, n: int, forwarded) -> list[int]:
    """``n`` wrong keys, the i-th with X-Forwarded-For ``forwarded(i)`` (None: no header)."""
    out = []
    for i in range(n):
        xff = forwarded(i)
        r = await call_api(client, f"guess-{i:04d}-0123456789", **({"X-Forwarded-For": xff} if xff is not None else {}))
        out.append(r.status)
    return out


async def test_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(aiohttp_client, settings):
    now = [0.0]
    app, key = api_app(settings, now, trusted_proxies=("10.0.0.0/8",))  # the test client is 127.0.0.1: not trusted
    client = await aiohttp_client(app)
    statuses = await flood(client, key, PER_ADDRESS + 5, lambda i: f"198.51.100.{i}")  # a new "address" every guess
    assert statuses == [401] * PER_ADDRESS + [429] * 5  # all counted against the peer
    assert await refused_for_guessing(await call_api(client, PROBE, **{"X-Forwarded-For": "198.51.100.200"}))
    assert (await call_api(client, key)).status == 200  # the right key is never limited


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(aiohttp_client, settings):
    now = [0.0]
    app, key = api_app(settings, now, trusted_proxies=("127.0.0.1", "10.0.0.0/8"))  # the test client plays the proxy
    client = await aiohttp_client(app)
    # the client writes whatever it likes on the left; the proxies (10.x, then the peer) append on the right
    statuses = await flood(client, key, PER_ADDRESS + 3, lambda i: f"198.51.100.{i}, 203.0.113.5, 10.1.2.3")
    assert statuses == [401] * PER_ADDRESS + [429] * 3  # 203.0.113.5 could not escape by prepending
    assert (await call_api(client, PROBE, **{"X-Forwarded-For": "203.0.113.6, 10.1.2.3"})).status == 401  # its neighbour: counted, not limited
    assert (await call_api(client, PROBE)).status == 401  # the proxy's own bucket (no header) is untouched
    r = await client.post("/v1/orchestrate", headers=[("Authorization", f"Bearer {PROBE}"), ("X-Forwarded-For", "203.0.113.7"),
                                                      ("X-Forwarded-For", "203.0.113.5")])  # a second header line continues the list
    assert await refused_for_guessing(r)
    now[0] += ADDRESS_REFILL_S
    assert (await call_api(client, PROBE, **{"X-Forwarded-For": "203.0.113.5"})).status == 401  # one guess again
    assert (await call_api(client, key, **{"X-Forwarded-For": "203.0.113.5"})).status == 200


@pytest.mark.parametrize("header", ["not-an-ip", "", " , ,", "203.0.113.5, garbage", "999.1.1.1", "203.0.113.5;rm", "\u00e9"])
async def test_a_malformed_forwarded_header_falls_back_to_the_proxy_bucket(aiohttp_client, settings, header):
    now = [0.0]
    app, key = api_app(settings, now, trusted_proxies=("127.0.0.0/8",))
    client = await aiohttp_client(app)
    statuses = await flood(client, key, PER_ADDRESS + 2, lambda i: header)
    assert statuses == [401] * PER_ADDRESS + [429] * 2  # no 500, and no bucket of the client's choosing
    assert await refused_for_guessing(await call_api(client, PROBE))  # it was the proxy's own bucket
    assert (await call_api(client, PROBE, **{"X-Forwarded-For": "203.0.113.9"})).status == 401


def test_forwarded_addresses_parse_as_proxies_write_them():
    from handlers.client_ip import parse_ip

    assert str(parse_ip(" 203.0.113.5 ")) == "203.0.113.5"
    assert str(parse_ip("203.0.113.5:51234")) == "203.0.113.5"
    assert str(parse_ip("[2001:db8::1]:443")) == str(parse_ip("2001:db8::1")) == "2001:db8::1"
    assert str(parse_ip("::ffff:203.0.113.5")) == "203.0.113.5"  # a dual-stack socket's IPv4 client
    for bad in ("", "unknown", "_hidden", "203.0.113", "1.2.3.4.5", "[::1", "2001:db8::zz", "203.0.113.5:80:90"):
        assert parse_ip(bad) is None, bad


def test_trusted_proxies_setting_is_validated_and_normalised():
    from bot.settings import Settings, SettingsError

    base = {"TRIAL": "true"}
    assert Settings.from_env(base).trusted_proxies == ()
    s = Settings.from_env({**base, "TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,,2001:db8::/32"})
    assert s.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    with pytest.raises(SettingsError, match=r"TRUSTED_PROXIES=.*did you mean 10\.0\.0\.0/8"):
        Settings.from_env({**base, "TRUSTED_PROXIES": "10.0.0.1/8"})
    with pytest.raises(SettingsError, match=r"TRUSTED_PROXIES=.*'proxy\.example\.com' is not an IP address or CIDR"):
        Settings.from_env({**base, "TRUSTED_PROXIES": "10.0.0.1, proxy.example.com"})


# ---------------------------------------------------------------- 3. API_KEY length


def test_a_short_api_key_is_refused_at_start_up_and_by_check():
    import subprocess
    import sys

    from bot.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="API_KEY: use at least 16 characters"):
        Settings.from_env({"API_KEY": "abc123", "TRIAL": "1"})
    with pytest.raises(SettingsError, match="API_KEY"):  # spaces around do not count
        Settings.from_env({"API_KEY": "  0123456789abcde  ", "TRIAL": "1"})
    assert Settings.from_env({"API_KEY": "0123456789abcdef", "TRIAL": "1"}).api_key == "0123456789abcdef"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TWILIO_VALIDATE": "false", "API_KEY": "hunter2"}
    for command in ("check", "serve"):
        r = subprocess.run([sys.executable, "-m", "bot", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and "API_KEY: use at least 16 characters" in r.stdout + r.stderr, (command, r)
        assert "hunter2" not in r.stdout + r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- 4. webhook form bodies


async def test_webhook_forms_have_a_small_cap_of_their_own(settings):
    from handlers.errors import FORM_MAX_BYTES
    from tests.test_attacks_http import _send_chunked_junk, closed_by_server, hostport, serving

    form_head = "Content-Type: application/x-www-form-urlencoded\r\n"
    async with serving(settings.with_(body_timeout_s=30.0)) as (_app, url):
        async with aiohttp.ClientSession() as http:  # Twilio's callbacks are a few KB: answered
            padded = {"CallSid": "CA" + "1" * 32, "From": "+15551234567", "To": "+15557654321", "Pad": "p" * 8000}
            async with http.post(url + "/twilio/voice", data=padded) as r:
                assert r.status == 200 and "<Response>" in await r.text()
        host, port = hostport(url)
        for path in ("/twilio/voice", "/twilio/status", "/console/login"):
            # Content-Length over the cap (well under MAX_UPLOAD_BYTES): 413 without a byte of body sent
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{form_head}Content-Length: {FORM_MAX_BYTES + 1}\r\n\r\n".encode())
            reply = await closed_by_server(reader, 30)
            writer.close()
            assert reply.startswith(b"HTTP/1.1 413") and b'"too_large"' in reply, (path, reply[:200])
        # no Content-Length (chunked): the counted read stops at the cap
        reply, sent = await _send_chunked_junk(url, "/twilio/voice", form_head, b"CallSid=", 40 << 20)
        assert reply.startswith(b"HTTP/1.1 413") and sent < 8 << 20  # not MAX_UPLOAD_BYTES (10 MB)


# ---------------------------------------------------------------- 5. the transfer's ring time


def business_file(tmp_path, no_answer_s) -> Path:
    src = (REPO / "examples" / "business" / "dental-practice.toml").read_text()
    assert "no_answer_s = 20" in src
    path = tmp_path / "business.toml"
    path.write_text(src.replace("no_answer_s = 20", f"no_answer_s = {no_answer_s}"))
    return path


@pytest.mark.parametrize("bad", ["4", "121", '"20"', "true", "20.5"])
def test_no_answer_s_out_of_range_is_refused(tmp_path, bad):
    from bot.profile import ProfileError, load_profile

    with pytest.raises(ProfileError, match="transfer.no_answer_s"):
        load_profile(business_file(tmp_path, bad))


async def test_a_transfer_rings_for_the_business_files_no_answer_s(aiohttp_server, settings, tmp_path):
    from twilio.request_validator import RequestValidator

    from bot.carriers.twilio.simulator import simulate_call
    from tests.fakes.twilio_rest import RestBehaviour, twilio_rest_app
    from tests.test_calls import OPEN, TOKEN, phone_settings, serve, url

    s = phone_settings(settings, transfer_number="+15550001111", business_file=str(business_file(tmp_path, 17)))
    # no REST credentials: the stream's end answers <Dial>
    server, _, _ = await serve(aiohttp_server, s)
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, dtmf={0: "0"}, max_wait_s=6)
    assert "end-transfer" in report.marks_echoed
    params = {"CallSid": report.call_sid}
    sig = RequestValidator(TOKEN).compute_signature(url(server) + "/twilio/after", params)
    async with aiohttp.ClientSession() as http:
        async with http.post(url(server) + "/twilio/after", data=params, headers={"X-Twilio-Signature": sig}) as r:
            assert '<Dial timeout="17">+15550001111</Dial>' in await r.text()
    # over REST: the live call is updated with the same <Dial>
    state = RestBehaviour()
    rest = await aiohttp_server(twilio_rest_app(state))
    server, _, _ = await serve(aiohttp_server, s.with_(twilio_account_sid="AC" + "a" * 32, twilio_base_url=url(rest)))
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, dtmf={0: "0"}, max_wait_s=6)
    (u,) = state.updates
    assert '<Dial timeout="17">+15550001111</Dial>' in u["form"]["Twiml"]


# ---------------------------------------------------------------- 6. a message cut off on the LLM path


REQUEST = "I'd like to leave a message for the landlord about my boiler"
DETAILS = "My name is Ann Lee and my number is five five five, one two three, four five six seven"
ASK = " Sure, I can take a message. What's your name and the best number to call you back on?"


async def llm_call(aiohttp_server, settings, script: list[dict]):
    """A whole call (two caller turns, then the caller hangs up) with the real OpenAI SDK
    against the wire fake, tools on; returns the call's report, the app and the fake's record."""
    from bot.carriers.twilio.simulator import simulate_call
    from bot.providers.openai_llm import OpenAILLM
    from tests.fakes.cloud import FakeBehaviour, openai_app
    from tests.fakes.scripted import ScriptedTTS
    from tests.test_calls import TOKEN, phone_settings, serve, url
    from tests.test_dialogue_calls import UTTERANCE, LengthSTT
    from tests.test_llm_tools import PROPERTY, TUESDAY_3PM

    state = FakeBehaviour(script=script)
    fake = await aiohttp_server(openai_app(state))
    s = phone_settings(settings, openai_base_url=str(fake.make_url("/v1")), llm_provider="openai", llm_timeout=3.0, early_turn_ms=0)
    llm = OpenAILLM.from_settings(s, profile=PROPERTY, clock=lambda: TUESDAY_3PM)
    stt = LengthSTT(long=[REQUEST, DETAILS])
    server, _, app = await serve(aiohttp_server, s, stt=stt, llm=llm, tts=ScriptedTTS(ms_per_char=3))
    report = await simulate_call(url(server), [UTTERANCE] * 2, auth_token=TOKEN, max_wait_s=10, quiet_s=0.5, gap_s=0.2)
    assert len(report.turns) == 2 and not report.hung_up_by_bot
    await eventually(lambda: not app[CALLS])  # the call is over, its end-of-call work done
    return report, app, state


async def test_hang_up_while_the_llm_takes_a_message_keeps_it_incomplete(aiohttp_server, settings):
    from tests.test_dialogue_calls import saved

    report, app, state = await llm_call(aiohttp_server, settings, [
        {"reply": "", "tool_calls": [("get_hours", '{"day": "today"}')]},  # a tool round first
        {"reply": "We're open until five today." + ASK},
        {"reply": "Thanks, Ann. And what should the message say?"},  # the caller hangs up here
    ])
    assert [m["role"] for m in state.requests[1].messages][-2:] == ["assistant", "tool"]  # the tool call went round
    (m,) = await saved(app)
    assert (m.call_sid, m.name, m.callback_number, m.status) == (report.call_sid, "Ann Lee", "5551234567", "incomplete")
    assert "boiler" in m.about and "Ann Lee" in m.about  # what the caller said


async def test_a_message_the_llm_saved_is_not_kept_twice(aiohttp_server, settings):
    from tests.test_dialogue_calls import saved

    take = ("take_message", '{"name": "Ann Lee", "callback_number": "555 123 4567", "about": "the boiler", "urgent": false}')
    report, app, _ = await llm_call(aiohttp_server, settings, [
        {"reply": ASK.strip()},
        {"reply": "", "tool_calls": [take]},
        {"reply": "Thanks, Ann, I've passed it on. Anything else?"},
    ])
    rows = await saved(app, at_least=2, wait_s=1.0)
    assert [(r.name, r.about, r.status) for r in rows] == [("Ann Lee", "the boiler", "new")]


def test_heard_message_starts_where_the_model_takes_a_message():
    from bot.call_actions import SAVED_UPTO, heard_message
    from bot.conversation import Conversation

    conv = Conversation()
    conv.add_user("what time do you open?")
    conv.add_assistant("We open at nine.")
    assert heard_message(conv) is None  # no message was being taken
    conv.add_user(REQUEST)
    conv.add_assistant(ASK)
    conv.add_user(DETAILS)
    got = heard_message(conv)
    assert got is not None and got["about"].startswith(REQUEST) and "what time" not in got["about"]
    assert (got["name"], got["callback_number"]) == ("Ann Lee", "5551234567")
    conv.state[SAVED_UPTO] = len(conv.messages)  # that message was saved
    assert heard_message(conv) is None
    conv.state["receptionist"] = {}  # a dialogue with its own form is not read from the transcript
    conv.state.pop(SAVED_UPTO)
    assert heard_message(conv) is None
