"""SDP offer/answer for the SIP carrier: real offers from Asterisk, FreeSWITCH, baresip and
a carrier trunk, hold in both styles, rejected streams, and garbage that must only ever
raise SdpError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.carriers.sip.sdp import SdpError, accept_answer, answer_offer, make_offer, parse_sdp

ASTERISK = """v=0
o=- 1795563209 1795563209 IN IP4 192.168.1.10
s=Asterisk
c=IN IP4 192.168.1.10
t=0 0
m=audio 18012 RTP/AVP 0 8 3 111 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:111 G726-32/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""

FREESWITCH_PCMA_FIRST = """v=0\r
o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.5\r
s=FreeSWITCH\r
c=IN IP4 203.0.113.5\r
t=0 0\r
m=audio 24602 RTP/AVP 9 8 0 96 13\r
a=rtpmap:9 G722/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:96 telephone-event/8000\r
a=fmtp:96 0-16\r
a=rtpmap:13 CN/8000\r
a=ptime:20\r
a=rtcp:24603 IN IP4 203.0.113.5\r
"""

# baresip offers video too, and a second media-level c= line
BARESIP_AV = """v=0
o=- 3 2 IN IP6 2001:db8::5
s=-
c=IN IP6 2001:db8::5
t=0 0
m=video 5004 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 5002 RTP/AVP 8 0 101
c=IN IP4 10.0.0.7
a=rtpmap:101 telephone-event/8000
"""


def test_asterisk_offer_gets_pcmu_and_its_dtmf_type() -> None:
    text, p = answer_offer(parse_sdp(ASTERISK), local_ip="198.51.100.2", local_port=40000)
    assert (p.remote_addr, p.payload_type, p.codec, p.dtmf_payload_type, p.ptime_ms, p.direction) == (
        ("192.168.1.10", 18012), 0, "PCMU", 101, 20, "sendrecv")
    assert p.sending and p.receiving
    ans = parse_sdp(text)
    assert ans.connection == "198.51.100.2"
    (m,) = ans.media
    assert (m.port, m.formats, m.direction, m.ptime) == (40000, ("0", "101"), "sendrecv", 20)
    assert m.fmtp[101] == "0-16"
    assert text.endswith("\r\n") and "\r\n\r\n" not in text


def test_offerers_order_is_kept_g722_skipped_pcma_chosen() -> None:
    _, p = answer_offer(parse_sdp(FREESWITCH_PCMA_FIRST), local_ip="198.51.100.2", local_port=40002)
    assert (p.codec, p.payload_type, p.dtmf_payload_type, p.rtcp_port) == ("PCMA", 8, 96, 24603)


def test_video_rejected_with_port_zero_and_media_level_c_wins() -> None:
    text, p = answer_offer(parse_sdp(BARESIP_AV), local_ip="198.51.100.2", local_port=40004)
    assert p.remote_addr == ("10.0.0.7", 5002) and p.codec == "PCMA" and p.dtmf_payload_type == 101
    video, audio = parse_sdp(text).media
    assert (video.media, video.port) == ("video", 0)
    assert (audio.media, audio.port, audio.formats) == ("audio", 40004, ("8", "101"))


def _offer(extra: str = "", c: str = "192.0.2.9", formats: str = "0 101", proto: str = "RTP/AVP") -> str:
    return f"v=0\no=x 1 1 IN IP4 {c}\ns=-\nc=IN IP4 {c}\nt=0 0\nm=audio 7078 {proto} {formats}\na=rtpmap:101 telephone-event/8000\n{extra}"


@pytest.mark.parametrize(
    ("extra", "c", "ours", "sending"),
    [
        ("a=sendonly\n", "192.0.2.9", "recvonly", False),  # they hold us (music on hold flows to us)
        ("a=recvonly\n", "192.0.2.9", "sendonly", True),
        ("a=inactive\n", "192.0.2.9", "inactive", False),
        ("", "0.0.0.0", "recvonly", False),  # RFC 2543 hold
        ("a=inactive\n", "0.0.0.0", "inactive", False),
        ("a=sendrecv\n", "192.0.2.9", "sendrecv", True),  # unhold
    ],
)
def test_hold_styles(extra: str, c: str, ours: str, sending: bool) -> None:
    text, p = answer_offer(parse_sdp(_offer(extra, c)), local_ip="10.1.1.1", local_port=30000)
    assert p.direction == ours and p.sending is sending
    assert parse_sdp(text).media[0].direction == ours


def test_session_level_direction_applies_unless_media_overrides() -> None:
    sdp = "v=0\no=x 1 1 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\na=sendonly\nm=audio 7078 RTP/AVP 0\n"
    assert answer_offer(parse_sdp(sdp), local_ip="10.1.1.1", local_port=30000)[1].direction == "recvonly"
    sdp2 = sdp + "a=sendrecv\n"
    assert answer_offer(parse_sdp(sdp2), local_ip="10.1.1.1", local_port=30000)[1].direction == "sendrecv"


@pytest.mark.parametrize(
    "offer",
    [
        _offer(formats="18 3"),  # G.729 and GSM only
        _offer(proto="RTP/SAVP"),  # SRTP
        _offer(formats="96", extra="a=rtpmap:96 PCMU/16000\n"),  # wrong clock rate
        "v=0\no=x 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=video 5000 RTP/AVP 96\n",
        "v=0\no=x 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 0 RTP/AVP 0\n",  # stream disabled
    ],
)
def test_nothing_acceptable_is_sdp_error(offer: str) -> None:
    with pytest.raises(SdpError):
        answer_offer(parse_sdp(offer), local_ip="10.1.1.1", local_port=30000)


def test_pcmu_on_a_dynamic_type_and_second_audio_stream_rejected() -> None:
    offer = _offer(formats="97", extra="a=rtpmap:97 pcmu/8000\nm=audio 7080 RTP/AVP 0\n")
    text, p = answer_offer(parse_sdp(offer), local_ip="10.1.1.1", local_port=30000)
    assert (p.payload_type, p.codec, p.dtmf_payload_type) == (97, "PCMU", None)
    assert [m.port for m in parse_sdp(text).media] == [30000, 0]


def test_reinvite_answer_keeps_session_id_and_bumps_version() -> None:
    first, _ = answer_offer(parse_sdp(ASTERISK), local_ip="10.1.1.1", local_port=30000, session_id=42, session_version=1)
    again, _ = answer_offer(parse_sdp(ASTERISK), local_ip="10.1.1.1", local_port=30000, session_id=42, session_version=2)
    assert parse_sdp(first).origin[1:3] == ("42", "1") and parse_sdp(again).origin[1:3] == ("42", "2")


def test_offer_answer_roundtrip_for_outbound_calls() -> None:
    offer = make_offer(local_ip="10.1.1.1", local_port=30010, codecs=("PCMA", "PCMU"))
    answer_text, theirs = answer_offer(parse_sdp(offer), local_ip="10.2.2.2", local_port=50000)
    assert theirs.codec == "PCMA" and theirs.remote_addr == ("10.1.1.1", 30010) and theirs.dtmf_payload_type == 101
    ours = accept_answer(parse_sdp(answer_text))
    assert ours.remote_addr == ("10.2.2.2", 50000) and ours.codec == "PCMA" and ours.direction == "sendrecv"
    held = make_offer(local_ip="10.1.1.1", local_port=30010, direction="sendonly")
    assert answer_offer(parse_sdp(held), local_ip="10.2.2.2", local_port=50000)[1].direction == "recvonly"


@pytest.mark.parametrize(
    "garbage",
    [
        "", "hello", "v=1\n", "v=0\n", "v=0\ns=-\n",  # no origin
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 5000 RTP/AVP 0\n",  # no c= anywhere
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 99999 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio -1 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 example.com\nm=audio 5000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 2001:db8::1\nm=audio 5000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/AVP 0\na=rtpmap:²0 PCMU/8000\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 5000\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\n" + "m=audio 5000 RTP/AVP 0\n" * 40,
        "v=0\no=- 1 1 IN IP4 1.2.3.4\n" + "a=x\n" * 10_000,
        "v=0\n\x00=zz\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 224.2.1.1/127\nm=audio 5000 RTP/AVP 0\n",  # multicast
        "v=0\no=- 1 1 IN IP6 ::1\nc=IN IP6 ff02::1\nm=audio 5000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 255.255.255.255\nm=audio 5000 RTP/AVP 0\n",  # broadcast
    ],
)
def test_garbage_is_sdp_error(garbage: str) -> None:
    with pytest.raises(SdpError):
        answer_offer(parse_sdp(garbage), local_ip="10.1.1.1", local_port=30000)


LINES = st.sampled_from([
    "o=- 1 1 IN IP4 1.2.3.4", "c=IN IP4 1.2.3.4", "c=IN IP4 0.0.0.0", "c=IN IP6 ::1", "c=IN", "m=audio 5000 RTP/AVP 0 8 101",
    "m=audio 5000 RTP/AVP", "m=video 0 RTP/AVP 96", "a=rtpmap:101 telephone-event/8000", "a=rtpmap:0 PCMU/8000/x", "a=rtpmap:x",
    "a=fmtp:101 0-16", "a=ptime:abc", "a=ptime:20.5", "a=rtcp:", "a=rtcp:0", "a=sendonly", "a=inactive", "t=0 0", "s=", "x", "=",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(LINES, st.text(max_size=30)), max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_line_soup_raises_only_sdp_error(lines: list[str], sep: str) -> None:
    text = sep.join(["v=0", *lines])
    try:
        _, p = answer_offer(parse_sdp(text), local_ip="10.1.1.1", local_port=30000)
    except SdpError:
        return
    assert p.codec in ("PCMU", "PCMA") and 0 < p.remote_addr[1] <= 65535
