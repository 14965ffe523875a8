"""RTP packets, source latching (no hijack), RTCP, DTMF (RFC 4733 and SIP INFO) and the
A-law tables of the SIP carrier's media plane: pure, no sockets."""

from __future__ import annotations

import struct
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.carriers.sip import rtcp
from bot.carriers.sip.dtmf import DtmfDecoder, decode_event, encode_event, parse_info
from bot.carriers.sip.rtp import RtpError, RtpReceiver, RtpSender, SourceStats, build, parse
from media import alaw

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def test_build_parse_roundtrip_and_header_bits() -> None:
    data = build(0, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x01" * 160, marker=True)
    assert data[:2] == b"\x80\x80" and len(data) == 172
    p = parse(data)
    assert (p.payload_type, p.marker, p.seq, p.timestamp, p.ssrc, p.payload) == (0, True, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x01" * 160)


def test_csrc_extension_and_padding_are_skipped() -> None:
    payload = b"abcd" * 40
    csrcs = struct.pack("!II", 1, 2)
    ext = struct.pack("!HH", 0xBEDE, 2) + b"\x00" * 8
    pad = b"\x00\x00\x03"
    data = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 8, 7, 1000, 42) + csrcs + ext + payload + pad
    p = parse(data)
    assert (p.payload_type, p.seq, p.payload) == (8, 7, payload)


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\x80" * 11,
        b"\x40" + bytes(11),  # version 1
        bytes([0x8F, 0]) + bytes(10),  # 15 CSRCs announced, none there
        bytes([0x90, 0]) + bytes(10) + b"\x00\x00\xff\xff",  # extension longer than the packet
        bytes([0xA0, 0]) + bytes(10) + b"\x00",  # padding count 0
        bytes([0xA0, 0]) + bytes(10) + b"\x40",  # padding past the header
        bytes([0x80, 0xC8]) + bytes(10),  # an RTCP SR on the RTP port
    ],
)
def test_malformed_packets_raise_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        p = parse(data)
    except RtpError:
        return
    assert len(p.payload) <= len(data) - 12


def test_sender_numbers_wrap_and_skip_keeps_sequence() -> None:
    s = RtpSender(ssrc=5, seq=65534, timestamp=0xFFFFFF00)
    a, b, c = (parse(s.packet(0, b"\xff" * 160)) for _ in range(3))
    assert [a.seq, b.seq, c.seq] == [65534, 65535, 0]
    assert [a.timestamp, b.timestamp, c.timestamp] == [0xFFFFFF00, (0xFFFFFF00 + 160) & 0xFFFFFFFF, (0xFFFFFF00 + 320) & 0xFFFFFFFF]
    assert [a.marker, b.marker, c.marker] == [True, False, False]
    s.skip(800)
    d = parse(s.packet(0, b"\xff" * 160))
    assert d.seq == 1 and d.timestamp == (c.timestamp + 160 + 800) & 0xFFFFFFFF and d.marker


PEER = ("81.2.69.160", 4000)


def pkt(seq: int, ssrc: int = 77, pt: int = 0) -> bytes:
    return build(pt, seq, seq * 160, ssrc, b"\xff" * 160)


def test_latches_on_the_negotiated_address_and_drops_strangers() -> None:
    rx = RtpReceiver()
    rx.expect(PEER, now=0.0)
    assert rx.accept(pkt(1), ("198.51.100.66", 4000), 0.1) is None  # a stranger before the peer
    assert rx.accept(pkt(2), PEER, 0.2) is not None and rx.latched == PEER
    assert rx.accept(pkt(3, ssrc=99), ("198.51.100.66", 4000), 0.3) is None
    assert rx.accept(pkt(3), ("81.2.69.160", 4002), 0.4) is not None  # same SSRC from a new port inside the learning window:
    assert rx.latched == ("81.2.69.160", 4002)  # a NAT rebinding, followed
    rx.accept(pkt(4), ("81.2.69.160", 4002), 0.5)
    # after the learning window nothing moves the stream, even with the right SSRC
    assert rx.accept(pkt(5), ("203.0.113.9", 5000), 10.0) is None
    assert rx.accept(pkt(6), PEER, 10.1) is None
    assert rx.latched == ("81.2.69.160", 4002)
    assert rx.strangers == 4 and rx.relatched == 1


def test_behind_nat_a_private_sdp_address_learns_the_public_source_after_probation() -> None:
    rx = RtpReceiver(probation=2)
    rx.expect(("10.0.0.5", 7078), now=0.0)
    public = ("203.0.113.50", 31000)
    assert rx.accept(pkt(1), public, 0.05) is None  # one packet is not enough
    assert rx.accept(pkt(2, ssrc=1), ("203.0.113.51", 1), 0.06) is None  # interleaved attacker resets nothing for public
    assert rx.accept(pkt(3), public, 0.07) is None  # the candidate changed; start again
    assert rx.accept(pkt(4), public, 0.08) is not None and rx.latched == public
    assert rx.accept(pkt(5, ssrc=1), ("203.0.113.51", 1), 0.09) is None


def test_public_sdp_address_never_learns_another_host() -> None:
    rx = RtpReceiver()
    rx.expect(PEER, now=0.0)
    for i in range(10):
        assert rx.accept(pkt(i), ("203.0.113.50", 31000), 0.02 * i) is None
    assert rx.latched is None and rx.strangers == 10


def test_signalling_peer_is_trusted_behind_nat_and_ssrc_change_from_same_address_is_taken() -> None:
    rx = RtpReceiver(probation=1)
    rx.expect(PEER, now=0.0, peer_host="198.51.100.1")
    assert rx.accept(pkt(1), ("198.51.100.1", 9000), 0.1) is not None
    assert rx.accept(pkt(2, ssrc=555), ("198.51.100.1", 9000), 20.0) is not None  # a PBX re-bridged the call
    assert rx.ssrc == 555 and rx.ssrc_changes == 1


def test_source_stats_count_loss_across_wrap_and_jitter() -> None:
    s = SourceStats(65530)
    for seq in [65530, 65531, 65533, 65534, 65535, 0, 1, 3]:  # 65532 and 2 lost
        n = (seq - 65530) & 0xFFFF
        s.update(seq, n * 160, 5.0 + n * 0.02)
    assert s.extended_max == 65536 + 3 and s.expected == 10 and s.received == 8 and s.lost == 2
    fraction, cumulative = s.interval()
    assert cumulative == 2 and fraction == (2 << 8) // 10
    assert s.jitter < 1  # perfectly paced arrivals


def test_rtcp_report_roundtrip_sr_rr_bye() -> None:
    src = SourceStats(100)
    src.update(100, 0, 0.0)
    sr = rtcp.report(ssrc=1, cname="phonebot-x", sent=(1600, 10, 1600), source=src, source_ssrc=2, now=1_700_000_000.5)
    info = rtcp.parse(sr)
    assert info.types == (rtcp.SR, rtcp.SDES) and info.ssrc == 1 and info.lsr is not None and not info.bye
    (block,) = info.blocks
    assert (block.ssrc, block.lost, block.fraction_lost) == (2, 0, 0)
    rr = rtcp.parse(rtcp.report(ssrc=1, cname="c", sent=None, source=None, source_ssrc=None, bye=True))
    assert rr.types == (rtcp.RR, rtcp.SDES, rtcp.BYE) and rr.bye and rr.lsr is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_rtcp_garbage_raises_only_rtcp_error(data: bytes) -> None:
    try:
        rtcp.parse(data)
    except rtcp.RtcpError:
        pass


def test_rfc4733_one_digit_per_key_press_despite_redundant_ends_and_loss() -> None:
    dec = DtmfDecoder()
    got = []
    for ts, digit in [(1000, "5"), (2600, "#"), (4200, "5")]:
        packets = encode_event(digit, duration_ms=120)
        assert packets[0][1] and sum(m for _, m in packets) == 1 and len(packets) >= 4
        assert decode_event(packets[-1][0]) == ("0123456789*#ABCD".index(digit), True, 960)
        for payload, _ in packets[1:] if digit == "#" else packets:  # the start of '#' was lost
            got.append(dec.feed(9, ts, payload))
            got.append(dec.feed(9, ts, payload))  # duplicated by the network
    assert [d for d in got if d] == ["5", "#", "5"]
    assert dec.feed(9, 9999, bytes([16, 0x80, 0, 160])) is None  # flash is not a key
    assert dec.feed(9, 9999, b"\x01") is None


@pytest.mark.parametrize(
    ("ctype", "body", "digit"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("Application/DTMF-Relay; charset=utf-8", "signal= *\nDuration=100", "*"),
        ("application/dtmf-relay", "Signal=11\r\nDuration=160", "#"),
        ("application/dtmf-relay", b"Signal=d\r\n", "D"),
        ("application/dtmf", "9", "9"),
        ("application/dtmf", " # \r\n", "#"),
        ("application/dtmf-relay", "Duration=160", None),
        ("application/dtmf-relay", "Signal=55", None),
        ("application/dtmf-relay", "Signal=\u0665", None),  # an Arabic-Indic five is not a key
        ("application/dtmf", "x", None),
        ("application/sdp", "v=0", None),
        ("application/dtmf", "1" * 5000, None),
    ],
)
def test_sip_info_dtmf(ctype: str, body: str | bytes, digit: str | None) -> None:
    assert parse_info(ctype, body) == digit


def test_alaw_tables_match_audioop_and_roundtrip() -> None:
    codes = bytes(range(256))
    assert alaw.to_ulaw(codes) == audioop.lin2ulaw(audioop.alaw2lin(codes, 2), 2)
    assert alaw.from_ulaw(b"\xff") == bytes([alaw.SILENCE])
    assert abs(int.from_bytes(audioop.ulaw2lin(alaw.to_ulaw(bytes([alaw.SILENCE])), 2), "little", signed=True)) <= 8
    # A-law -> mu-law -> A-law is exact for all but the quietest codes (mu-law is finer there)
    back = alaw.from_ulaw(alaw.to_ulaw(codes))
    assert sum(a != b for a, b in zip(back, codes, strict=True)) <= 16


ADDRS = st.tuples(st.sampled_from(["81.2.69.160", "81.2.69.161", "10.0.0.5", "127.0.0.1", "::1", "203.0.113.7"]), st.sampled_from([4000, 4001, 5000]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(ADDRS, st.sampled_from([77, 78, 1]), st.floats(0, 20), st.booleans()), max_size=40),
    st.sampled_from([("81.2.69.160", 4000), ("10.0.0.5", 4000)]),
)
def test_once_learning_is_over_only_the_latched_source_gets_through(
    packets: list[tuple[tuple[str, int], int, float, bool]], negotiated: tuple[str, int]
) -> None:
    rx = RtpReceiver()
    rx.expect(negotiated, now=0.0)
    accepted = []
    for seq, (addr, ssrc, when, garbage) in enumerate(sorted(packets, key=lambda p: p[2])):
        data = b"\x00garbage" if garbage else pkt(seq, ssrc=ssrc)
        latched_before = rx.latched
        got = rx.accept(data, addr, when)
        if got is not None:
            accepted.append((addr, when))
            assert not garbage
            if when >= rx.learn_s:  # after the window nothing new is taken (but the negotiated address, if none was)
                assert addr == latched_before or (latched_before is None and addr == negotiated)
    hosts = {a[0] for a, _ in accepted}
    if negotiated[0] == "81.2.69.160":  # a public SDP address: only that IP (NAT may move the port)
        assert hosts <= {"81.2.69.160"}


@given(st.lists(st.binary(max_size=40), max_size=30), st.data())
def test_the_latched_sources_fast_path_reads_every_packet_as_parse_does(tails: list[bytes], data: st.DataObject) -> None:
    """After latching, a plain packet from the latched address skips the checks: what it returns
    must be what ``parse`` returns (or None where parse raises), SSRC changes still counted."""
    rx = RtpReceiver()
    rx.expect(PEER, now=0.0)
    assert rx.accept(pkt(1), PEER, 0.1) is not None
    changes = 0
    ssrc = rx.ssrc
    for i, tail in enumerate(tails):
        b0 = data.draw(st.sampled_from([0x80, 0x80, 0x81, 0x90, 0xA0, 0x40]))
        b1 = data.draw(st.sampled_from([0, 0x80, 8, 101, 0xC8, 0x48]))
        new_ssrc = data.draw(st.sampled_from([0x1234, 0x1234, 7]))
        raw = struct.pack("!BBHII", b0, b1, (2 + i) & 0xFFFF, 160 * (2 + i), new_ssrc) + tail
        try:
            want = parse(raw)
        except RtpError:
            want = None
        got = rx.accept(raw, PEER, 0.2 + i * 0.02)
        assert got == want
        if want is not None and want.ssrc != ssrc:
            changes += 1
            ssrc = want.ssrc
    assert rx.ssrc_changes == changes
