"""The sans-I/O SIP pieces: parsing (only SipError on any input), stream framing, responses,
digest auth both ways, the rate limit and the caller ID."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.carriers.sip import message as sipmsg
from bot.carriers.sip.dialog import caller_id
from bot.carriers.sip.guard import Digest, RateLimit, answer_challenge
from bot.carriers.sip.message import Peer, SipError

INVITE = (
    b"INVITE sip:bot@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKabc;rport\r\n"
    b"From: \"Ann\" <sip:+14155550100@10.0.0.5>;tag=aa1\r\nTo: <sip:bot@192.0.2.1>\r\nCall-ID: c1@10.0.0.5\r\n"
    b"CSeq: 7 INVITE\r\nContact: <sip:ann@10.0.0.5:5070>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\nEXTRA"
)


def test_parse_honours_content_length_and_answers_with_received_and_rport():
    req = sipmsg.parse(INVITE)
    assert req.method == "INVITE" and req.body == b"v=0\n"
    out = sipmsg.parse(sipmsg.response(req, 180, peer=Peer("udp", "198.51.100.9", 40000), to_tag="t9"))
    assert out.code == 180 and sipmsg.tag_of(out.headers["To"]) == "t9"
    top = out.via[0]
    assert top.parameters["received"] == "198.51.100.9" and top.parameters["rport"] == "40000"
    assert out.headers["CSeq"] == "7 INVITE" and out.call_id == "c1@10.0.0.5"


@pytest.mark.parametrize("data, answerable", [
    (INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 7 BYE"), True),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 400"), True),
    (INVITE.replace(b"Call-ID: c1@10.0.0.5\r\n", b""), False),
    (INVITE.replace(b"\r\n\r\n", b"\r\n"), False),
    (INVITE + b"x" * 20000, False),
    (b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 100 + b"\r\n", False),
])
def test_bad_messages_raise_sip_error_only(data, answerable):
    with pytest.raises(SipError) as e:
        sipmsg.parse(data)
    assert e.value.answerable is answerable


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(0, len(INVITE)))
def test_any_bytes_give_a_message_or_sip_error(noise, at):
    for data in (noise, INVITE[:at] + noise + INVITE[at:], INVITE[:at] + noise):
        try:
            sipmsg.parse(data)
        except SipError:
            pass


def test_stream_framing_takes_whole_messages_and_keepalives():
    buf = bytearray(b"\r\n" + INVITE.replace(b"EXTRA", b"") + INVITE[:30])
    first = sipmsg.frame_stream(buf)
    assert first is not None and sipmsg.parse(first).method == "INVITE"
    assert sipmsg.frame_stream(buf) is None and bytes(buf) == INVITE[:30]
    with pytest.raises(SipError):
        sipmsg.frame_stream(bytearray(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"))  # no Content-Length on a stream


def _register_with(auth: str) -> bytes:
    return (b"INVITE sip:bot@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
            b"To: <sip:bot@192.0.2.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nAuthorization: " + auth.encode() + b"\r\nContent-Length: 0\r\n\r\n")


def test_digest_accepts_the_right_answer_and_nothing_else():
    now = [1_000_000.0]
    d = Digest("trunk", "pw-1", clock=lambda: now[0])
    challenge = d.challenge()
    good = answer_challenge(challenge, method="INVITE", uri="sip:bot@192.0.2.1", username="trunk", password="pw-1")
    assert d.check(sipmsg.parse(_register_with(good))) == "ok"
    bad = answer_challenge(challenge, method="INVITE", uri="sip:bot@192.0.2.1", username="trunk", password="pw-2")
    assert d.check(sipmsg.parse(_register_with(bad))) == "bad"
    forged = good.replace(good.split('nonce="')[1].split('"')[0], "5f5e100.0000000000000000deadbeef")
    assert d.check(sipmsg.parse(_register_with(forged))) == "bad"
    other_instance = Digest("trunk", "pw-1", clock=lambda: now[0])  # same password: accepts the nonce
    assert other_instance.check(sipmsg.parse(_register_with(good))) == "ok"
    now[0] += 3600
    assert d.check(sipmsg.parse(_register_with(good))) == "stale"
    assert d.check(sipmsg.parse(_register_with("Digest garbage"))) in ("bad", "missing")


def test_rate_limit_per_source():
    t = [0.0]
    r = RateLimit(2, 4, clock=lambda: t[0])
    assert [r.take("a") for _ in range(6)] == [True] * 4 + [False] * 2
    assert r.take("b")
    t[0] += 1.0
    assert r.take("a") and r.take("a") and not r.take("a")


@pytest.mark.parametrize("headers, want", [
    ({"From": "<sip:+14155550100@x>;tag=1"}, "+14155550100"),
    ({"From": "<sip:anonymous@anonymous.invalid>;tag=1", "P-Asserted-Identity": "<sip:+442071234567@carrier>"}, "+442071234567"),
    ({"From": "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1"}, "anonymous"),
    ({"From": "<sip:alice@pbx.example.com>;tag=1"}, "sip:alice@pbx.example.com"),
    ({"From": "<sip:1-415-555-0100@x>;tag=1"}, "14155550100"),
    ({"From": "<sip:%27%3Bdrop@x>;tag=1"}, "anonymous"),
    ({"From": "<tel:+14155550100>;tag=1"}, "+14155550100"),
])
def test_caller_id_is_a_number_a_safe_sip_uri_or_anonymous(headers, want):
    raw = b"INVITE sip:bot@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:bot@h>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n"
    raw += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"Content-Length: 0\r\n\r\n"
    assert caller_id(sipmsg.parse(raw)) == want
