"""SIP signalling against SIPp (sip-tester): a call with INFO DTMF, hold/unhold and a codec
change, CANCEL before the answer, an unauthorised source, digest auth, OPTIONS, and
malformed datagrams from our own fuzzer. The media is a stand-in (tests/fakes/sip_media.py);
tests/test_sip_calls.py runs whole calls on the real RTP media and the engine."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from bot.settings import Settings
from bot.transport import DtmfIn, StopIn
from tests.conftest import eventually
from tests.fakes.sip_media import FakeMedia
from tests.sip_rig import SCENARIOS, needs_sipp, sipp, start_rig

pytestmark = needs_sipp


@pytest.fixture
def sip_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, twilio_validate=False, trial=True, sip_allow=("127.0.0.1/32",))


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_a_call_with_info_dtmf_hold_unhold_codec_change_and_bye(sip_settings, tmp_path, transport):
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    try:
        target = rig.udp if transport == "u1" else rig.tcp
        r = await sipp(target, "-sf", str(SCENARIOS / "call_flow.xml"), "-m", "1", "-t", transport, "-i", "127.0.0.1", cwd=tmp_path)
        assert r.rc == 0, r.out
        await eventually(lambda: rig.calls and not rig.server.calls)
        call = rig.calls[0]
        assert call.caller == "+14155550123"
        events = rig.events[call.call_sid]
        assert DtmfIn("5") in events and isinstance(events[-1], StopIn)
        media = rig.media[0]
        directions = [(p.codec, p.direction) for p in media.configured]
        # answer, hold (they send only: we receive only), unhold with PCMA
        assert directions == [("PCMU", "sendrecv"), ("PCMU", "recvonly"), ("PCMA", "sendrecv")]
        assert media.closed.is_set()
    finally:
        await rig.server.close()


async def test_the_bot_hangs_up_by_bye_when_the_engine_ends_the_call(sip_settings, tmp_path):
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open, hold_s=0.5)
    try:  # SIPp's built-in uac holds 10 s; the bot's BYE comes first and SIPp answers it
        r = await sipp(rig.udp, "-sn", "uac", "-m", "1", "-d", "10000", "-i", "127.0.0.1", cwd=tmp_path, timeout=20)
        await eventually(lambda: rig.calls and not rig.server.calls)
        assert rig.calls[0].bye_sent and not rig.calls[0].remote_bye
        assert rig.server.endpoint.counts["stray_response"] == 0, r.out
    finally:
        await rig.server.close()


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_cancel_before_the_answer_gets_487_and_never_starts_the_call(sip_settings, tmp_path, transport):
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    try:
        target = rig.udp if transport == "u1" else rig.tcp
        r = await sipp(target, "-sf", str(SCENARIOS / "invite_cancel.xml"), "-m", "3", "-t", transport, "-i", "127.0.0.1", cwd=tmp_path)
        assert r.rc == 0, r.out
        await eventually(lambda: not rig.server.calls and len(rig.media) == 3 and all(m.closed.is_set() for m in rig.media))
        assert rig.calls == []  # the engine never saw them
    finally:
        await rig.server.close()


def _refused_scenario(tmp_path, code: int) -> str:
    path = tmp_path / f"refused_{code}.xml"
    path.write_text((SCENARIOS / "invite_refused.xml").read_text().replace("EXPECT", str(code)))
    return str(path)


async def test_an_invite_from_outside_the_allow_list_gets_403_and_never_reaches_the_engine(sip_settings, tmp_path):
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    try:  # SIPp from 127.0.0.2: not in SIP_ALLOW (127.0.0.1/32)
        r = await sipp(rig.udp, "-sf", _refused_scenario(tmp_path, 403), "-m", "2", "-i", "127.0.0.2", cwd=tmp_path)
        assert r.rc == 0, r.out
        assert rig.calls == [] and rig.media == []
        assert rig.server.endpoint.counts["forbidden"] >= 2
    finally:
        await rig.server.close()


async def test_a_flood_from_a_stranger_is_dropped_past_the_rate(sip_settings, tmp_path):
    rig = await start_rig(sip_settings.with_(sip_rate_per_s=5.0), media_factory=FakeMedia.open)
    try:
        host, port = rig.server.endpoint.local_addr("udp")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 0))
        s.setblocking(False)
        for i in range(300):
            s.sendto(_invite(i, s.getsockname()[1]), (host, port))
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        answers = 0
        try:
            while True:
                s.recv(4096)
                answers += 1
        except BlockingIOError:
            pass
        s.close()
        counts = rig.server.endpoint.counts
        assert counts["rate_limited"] >= 250 and answers <= 30  # the burst (5 s of the rate) is answered 403, the rest dropped
        assert rig.calls == [] and rig.media == []
    finally:
        await rig.server.close()


async def test_digest_auth_challenges_and_refuses_wrong_credentials(sip_settings, tmp_path):
    rig = await start_rig(sip_settings.with_(sip_username="trunk", sip_password="s3cret-pass"), media_factory=FakeMedia.open)
    try:
        r = await sipp(rig.udp, "-sf", _refused_scenario(tmp_path, 401), "-m", "1", "-i", "127.0.0.1", cwd=tmp_path)
        assert r.rc == 0, r.out
        assert rig.calls == [] and rig.server.refused.get("auth_missing") == 1
        # SIPp answers the 401 with [authentication] from -au/-ap
        r = await sipp(rig.udp, "-sf", str(SCENARIOS / "uac_auth.xml"), "-au", "trunk", "-ap", "s3cret-pass", "-m", "1", "-i", "127.0.0.1", cwd=tmp_path)
        assert r.rc == 0, r.out
        await eventually(lambda: len(rig.calls) == 1 and not rig.server.calls)
        r = await sipp(rig.udp, "-sf", str(SCENARIOS / "uac_auth.xml"), "-au", "trunk", "-ap", "wrong", "-m", "1", "-i", "127.0.0.1", cwd=tmp_path, timeout=8)
        assert r.rc != 0  # the second 401 is not what the scenario wants
        assert len(rig.calls) == 1 and rig.server.refused.get("auth_bad", 0) >= 1
    finally:
        await rig.server.close()


async def test_options_is_answered_and_says_503_while_draining(sip_settings, tmp_path):
    draining = {"on": False}
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    rig.server.draining = lambda: draining["on"]
    try:
        host, port = rig.server.endpoint.local_addr("udp")
        assert (await _options(host, port)).startswith(b"SIP/2.0 200")
        draining["on"] = True
        assert (await _options(host, port)).startswith(b"SIP/2.0 503")
    finally:
        await rig.server.close()


async def _options(host: str, port: int) -> bytes:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    me = s.getsockname()[1]
    s.sendto((
        f"OPTIONS sip:bot@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{random.getrandbits(40):x};rport\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:bot@{host}>\r\nCall-ID: opt{random.getrandbits(40):x}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode(), (host, port))
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(s, 4096), 2)
    finally:
        s.close()


def _invite(i: int, port: int, *, body: bytes = b"v=0\r\n") -> bytes:
    return (
        f"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{port};branch=z9hG4bKflood{i}\r\n"
        f"From: <sip:+14155550999@127.0.0.2>;tag=f{i}\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: flood-{i}\r\n"
        f"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _mutations(rng: random.Random, base: bytes) -> list[bytes]:
    """Realistic garbage: truncations, byte flips, header lines dropped or doubled, huge
    values, bad numbers, binary noise, CR/LF confusion."""
    lines = base.split(b"\r\n")
    out = [b"", b"\r\n", b"\x00" * 64, bytes(rng.randrange(256) for _ in range(600)), base.replace(b"\r\n", b"\n"),
           base[: len(base) // 2], base + b"x" * 20000, base.replace(b"SIP/2.0", b"SIP/3.0", 1), base.replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"),
           base.replace(b"CSeq: 1 INVITE", b"CSeq: 99999999999 INVITE"), base.replace(b"Content-Length: 5", b"Content-Length: 900"),
           base.replace(b"Content-Length: 5", b"Content-Length: -4"), base.replace(b"INVITE sip:", b"INV\xffITE sip:", 1),
           base.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), base.replace(b"To: <sip:bot@127.0.0.1>", b"To: <sip:bot@127.0.0.1;tag=x>"),
           b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnope\r\n\r\n", b"INVITE  SIP/2.0\r\n\r\n",
           b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 500 + b"\r\n"]
    for _ in range(150):
        ls = list(lines)
        op = rng.randrange(5)
        k = rng.randrange(1, len(ls))
        if op == 0:
            del ls[k]
        elif op == 1:
            ls.insert(k, ls[k])
        elif op == 2:
            ls[k] = ls[k][: rng.randrange(len(ls[k]) + 1)]
        elif op == 3:
            ls[k] = ls[k] + bytes(rng.choice(b";:<>@\"=,\x00\xff ") for _ in range(rng.randrange(1, 30)))
        else:
            pos = rng.randrange(len(base))
            ls = (base[:pos] + bytes([rng.randrange(256)]) + base[pos + 1:]).split(b"\r\n")
        out.append(b"\r\n".join(ls))
    return out


async def test_malformed_messages_are_dropped_or_answered_400_and_never_start_a_call(sip_settings, caplog):
    rig = await start_rig(sip_settings.with_(sip_rate_per_s=10000.0), media_factory=FakeMedia.open)
    try:
        host, port = rig.server.endpoint.local_addr("udp")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        rng = random.Random(24)
        sent = 0
        for i, data in enumerate(_mutations(rng, _invite(0, s.getsockname()[1]).replace(b"127.0.0.2", b"127.0.0.1"))):
            s.sendto(data.replace(b"flood0", f"fz{i}".encode()), (host, port))
            sent += 1
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        s.close()
        counts = rig.server.endpoint.counts
        assert counts["handler_error"] == 0
        assert counts["malformed"] >= 20
        assert "Traceback" not in caplog.text
        # whatever was sound enough to be an INVITE had an SDP of "v=0" only: never answered
        assert rig.calls == []
        assert (await _options(host, port)).startswith(b"SIP/2.0 200")  # still serving
    finally:
        await rig.server.close()


@pytest.mark.parametrize("password, ok", [("reg-pass-1", True), ("wrong", False)])
async def test_registration_answers_the_registrars_digest_challenge(sip_settings, tmp_path, password, ok):
    import socket as _s

    probe = _s.socket(_s.AF_INET, _s.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    reg_port = probe.getsockname()[1]
    probe.close()
    registrar = asyncio.create_task(sipp("127.0.0.1", "-sf", str(SCENARIOS / "registrar.xml"), "-p", str(reg_port), "-m", "1", "-i", "127.0.0.1", cwd=tmp_path, timeout=15))
    await asyncio.sleep(0.5)
    s = sip_settings.with_(sip_registrar=f"sip:127.0.0.1:{reg_port}", sip_username="trunk", sip_password=password)
    rig = await start_rig(s, media_factory=FakeMedia.open)
    try:
        r = await registrar
        assert r.rc == 0, r.out
        reg = rig.server.registration
        assert reg is not None
        await eventually(lambda: reg.last_code in (200, 403))
        assert reg.registered is ok and reg.last_code == (200 if ok else 403)
    finally:
        await rig.server.close()


async def test_a_late_offer_gets_our_offer_in_the_200_and_the_answer_from_the_ack(sip_settings, tmp_path):
    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    try:
        r = await sipp(rig.udp, "-sf", str(SCENARIOS / "late_offer.xml"), "-m", "1", "-i", "127.0.0.1", cwd=tmp_path)
        assert r.rc == 0, r.out
        await eventually(lambda: rig.calls and not rig.server.calls)
        assert [(p.codec, p.direction) for p in rig.media[0].configured] == [("PCMA", "sendrecv")]
        assert isinstance(rig.events[rig.calls[0].call_sid][-1], StopIn)
    finally:
        await rig.server.close()


async def _exchange(sock: socket.socket, data: bytes, dest: tuple[str, int], want: bytes, timeout: float = 3.0) -> bytes:
    """Send ``data`` and return the first datagram that starts with ``want`` (others skipped)."""
    loop = asyncio.get_running_loop()
    sock.sendto(data, dest)
    deadline = loop.time() + timeout
    while True:
        got = await asyncio.wait_for(loop.sock_recv(sock, 8192), max(0.01, deadline - loop.time()))
        if got.startswith(want):
            return got


async def test_session_timers_too_short_gets_422_else_the_caller_refreshes_or_the_bot_hangs_up(sip_settings):
    from bot.carriers.sip import message as sipmsg

    rig = await start_rig(sip_settings, media_factory=FakeMedia.open)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    me = s.getsockname()[1]
    dest = rig.server.endpoint.local_addr("udp")
    sdp = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

    def invite(se: int, call: str) -> bytes:
        return (f"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{call}\r\n"
                f"From: <sip:+14155550100@127.0.0.1>;tag=t{call}\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:a@127.0.0.1:{me}>\r\nSupported: timer\r\nSession-Expires: {se};refresher=uac\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n").encode() + sdp

    try:
        short = await _exchange(s, invite(30, "se1"), dest, b"SIP/2.0 422")
        assert b"Min-SE: 90" in short
        ok = sipmsg.parse(await _exchange(s, invite(120, "se2"), dest, b"SIP/2.0 200"))
        assert ok.headers["Session-Expires"] == "120;refresher=uac" and "timer" in ok.headers["Require"]
        s.sendto((f"ACK sip:phonebot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKack2\r\n"
                  f"From: <sip:+14155550100@127.0.0.1>;tag=tse2\r\nTo: {ok.headers['To']}\r\nCall-ID: se2\r\nCSeq: 1 ACK\r\n"
                  "Content-Length: 0\r\n\r\n").encode(), dest)
        await eventually(lambda: len(rig.calls) == 1)
        call = rig.calls[0]
        call._refreshed -= 100  # the session's clock: 100 of its 120 s went by without a refresh
        bye = await _wait_request(s, b"BYE ", 8.0)
        assert b"Call-ID: se2" in bye and call.bye_sent
        s.sendto(sipmsg.response(sipmsg.parse(bye), 200), dest)
    finally:
        s.close()
        await rig.server.close()


async def _wait_request(sock: socket.socket, want: bytes, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await asyncio.wait_for(loop.sock_recv(sock, 8192), max(0.01, deadline - loop.time()))
        if got.startswith(want):
            return got
