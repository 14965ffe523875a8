"""RtpMedia against a real UDP peer on 127.0.0.1: a little RTP client in the test sends and
records packets. Each test runs about a second of real media time (the media clock is the
loop's; sockets need a real loop)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest

from bot.carriers.sip.dtmf import DtmfDecoder, encode_event
from bot.carriers.sip.media_clock import MediaClock
from bot.carriers.sip.media_session import RtpMedia
from bot.carriers.sip.rtp import RtpPacket, build, parse
from bot.carriers.sip.sdp import MediaParams
from bot.transport import AudioIn, DtmfIn, MarkIn
from media import alaw
from tests.conftest import eventually

SIL = b"\xff" * 160


class Peer(asyncio.DatagramProtocol):
    """The far end: records what the bot sends, sends what the test scripts."""

    def __init__(self) -> None:
        self.got: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((asyncio.get_running_loop().time(), parse(data)))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))


async def udp_peer() -> Peer:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return peer


@pytest.fixture
async def call() -> AsyncIterator[tuple[RtpMedia, Peer]]:
    peer = await udp_peer()
    media = await RtpMedia.open(host="127.0.0.1", port_min=41000, port_max=41999)
    assert media.local_port % 2 == 0
    media.configure(params(peer.port))
    yield media, peer
    await media.close()
    assert peer.transport is not None
    peer.transport.close()


def params(port: int, codec: str = "PCMU", direction: str = "sendrecv", host: str = "127.0.0.1") -> MediaParams:
    return MediaParams((host, port), 0 if codec == "PCMU" else 8, codec, 101, 20, direction)


async def collect(media: RtpMedia, until: object, within_s: float = 5.0) -> list[object]:
    out: list[object] = []
    async with asyncio.timeout(within_s):
        async for ev in media.events():
            out.append(ev)
            if until(out):  # type: ignore[operator]
                break
    return out


async def send_paced(peer: Peer, port: int, packets: list[bytes], every_s: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i, data in enumerate(packets):
        await asyncio.sleep(max(0.0, t0 + i * every_s - loop.time()))
        peer.send(data, port)


def tone(n: int) -> bytes:
    return bytes([n]) * 160


async def test_audio_in_comes_out_in_order_despite_reorder_and_loss(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    seqs = list(range(40))
    seqs[5], seqs[6] = seqs[6], seqs[5]  # reordered
    seqs[20], seqs[21] = seqs[21], seqs[20]
    seqs.remove(30)  # lost
    packets = [build(0, 1000 + s, 5000 + s * 160, 0xABC, tone(s + 1), marker=s == 0) for s in seqs]
    packets.insert(10, packets[9])  # duplicated
    sender = asyncio.create_task(send_paced(peer, media.local_port, packets))
    events = await collect(media, lambda out: any(isinstance(e, AudioIn) and e.frame == tone(40) for e in out))
    await sender
    frames = [e.frame for e in events if isinstance(e, AudioIn) and e.frame != SIL]
    distinct = [f[0] for i, f in enumerate(frames) if i == 0 or f != frames[i - 1]]
    assert distinct == [s + 1 for s in range(40) if s != 30]  # in order, 31 concealed by repeating 30
    assert frames.count(tone(30)) == 2
    st = media.stats()
    # RFC 3550 counts the duplicate as received, so it cancels the lost packet in "lost"
    assert st["packets_in"] == 40 and st["jb_duplicates"] == 1 and st["jb_concealed"] >= 1 and st["strangers"] == 0


async def test_dtmf_gives_one_digit_per_key(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    packets = []
    seq = 0
    for k, digit in enumerate("19#"):
        for payload, marker in encode_event(digit, duration_ms=100):
            packets.append(build(101, seq, 8000 * (k + 1), 0x55, payload, marker))
            seq += 1
    sender = asyncio.create_task(send_paced(peer, media.local_port, packets, every_s=0.005))
    events = await collect(media, lambda out: sum(isinstance(e, DtmfIn) for e in out) >= 3)
    await sender
    await asyncio.sleep(0.1)
    assert [e.digit for e in events if isinstance(e, DtmfIn)] == ["1", "9", "#"]
    assert media.stats()["dtmf_in"] == 3 and media.stats()["packets_in"] == len(packets)


async def test_a_strangers_packets_are_dropped_and_counted(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    stranger = await udp_peer()
    try:
        good = [build(0, s, s * 160, 0x111, tone(7), s == 0) for s in range(30)]
        bad = [build(0, s, s * 160, 0x999, tone(66), s == 0) for s in range(30)]
        await asyncio.gather(send_paced(peer, media.local_port, good), send_paced(stranger, media.local_port, bad))
        events = await collect(media, lambda out: len(out) >= 40)
        frames = {e.frame for e in events if isinstance(e, AudioIn)}
        assert tone(66) not in frames and tone(7) in frames
        assert media.stats()["strangers"] == 30
        assert not stranger.got  # and nothing is sent to the stranger
    finally:
        assert stranger.transport is not None
        stranger.transport.close()


async def test_pacing_sequence_and_timestamps(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    loop = asyncio.get_running_loop()
    media.play(b"".join(tone(i) for i in range(1, 31)))
    t0 = loop.time()
    await asyncio.sleep(1.0)
    elapsed = loop.time() - t0
    got = [p for _, p in peer.got]
    assert len(got) <= elapsed / 0.02 + 2  # never a burst beyond the clock
    assert len(got) >= 25
    assert [p.payload[0] for p in got[:30]] == list(range(1, 31))  # the queued frames first, in order
    assert all(p.payload == SIL for p in got[30:])  # then silence: the stream is continuous
    assert all((b.seq - a.seq) & 0xFFFF == 1 for a, b in zip(got, got[1:], strict=False))
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(got, got[1:], strict=False)]
    assert all(s % 160 == 0 and s > 0 for s in steps) and steps.count(160) >= len(steps) - 2
    assert got[0].marker and len({p.ssrc for p in got}) == 1 and all(p.payload_type == 0 for p in got)


async def test_clear_stops_playout_at_once_and_echoes_pending_marks(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    media.play(tone(9) * 200)
    media.mark("after-long")
    await eventually(lambda: sum(p.payload == tone(9) for _, p in peer.got) >= 5, every_s=0.005)
    media.clear()
    cleared_at = len(peer.got)
    events = await collect(media, lambda out: any(isinstance(e, MarkIn) for e in out))
    assert [e for e in events if isinstance(e, MarkIn)] == [MarkIn("after-long")]
    await asyncio.sleep(0.2)
    after = [p.payload for _, p in peer.got[cleared_at:]]
    assert after and after[0] in (tone(9), SIL) and all(p == SIL for p in after[1:])  # at most the packet in flight
    assert media.stats()["queued_frames"] == 0


async def test_marks_are_echoed_in_order_after_their_audio_was_sent(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    media.mark("nothing-queued")
    media.play(tone(1) * 5)
    media.mark("a")
    media.play(tone(2) * 5)
    media.mark("b")
    media.mark("c")
    events = await collect(media, lambda out: sum(isinstance(e, MarkIn) for e in out) == 4)
    assert [e.name for e in events if isinstance(e, MarkIn)] == ["nothing-queued", "a", "b", "c"]
    assert media.stats()["packets_out"] >= 10  # "b" came after all ten frames were sent
    await asyncio.sleep(0.05)
    sent = [p.payload for _, p in peer.got]
    assert sent.count(tone(1)) == 5 and sent.count(tone(2)) == 5


async def test_media_timeout_ends_the_stream() -> None:
    peer = await udp_peer()
    media = await RtpMedia.open(host="127.0.0.1", port_min=41000, port_max=41999, timeout_s=0.3)
    try:
        media.configure(params(peer.port))
        peer.send(build(0, 1, 160, 5, tone(3), True), media.local_port)
        events = await collect(media, lambda out: False, within_s=5)
        assert media.timed_out and any(isinstance(e, AudioIn) for e in events)
    finally:
        await media.close()
        assert peer.transport is not None
        peer.transport.close()
    assert media.timed_out  # close after the timeout does not undo it


async def test_close_ends_events_without_timeout(call: tuple[RtpMedia, Peer]) -> None:
    media, _ = call
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, lambda: asyncio.ensure_future(media.close()))
    await collect(media, lambda out: False)
    assert not media.timed_out


async def test_pcma_both_ways(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    media.configure(params(peer.port, codec="PCMA"))
    ulaw = bytes((100 + i) % 256 for i in range(160))
    media.play(ulaw)
    a = alaw.from_ulaw(tone(0x20))
    packets = [build(8, s, s * 160, 3, a, s == 0) for s in range(10)]
    packets += [build(0, s, s * 160, 3, tone(0x30), False) for s in range(10, 20)]  # PCMU though PCMA was agreed
    sender = asyncio.create_task(send_paced(peer, media.local_port, packets))
    events = await collect(media, lambda out: any(isinstance(e, AudioIn) and e.frame == tone(0x30) for e in out))
    await sender
    assert alaw.to_ulaw(a) in [e.frame for e in events if isinstance(e, AudioIn)]
    await asyncio.sleep(0.1)
    pcma = [p for _, p in peer.got if p.payload_type == 8]
    assert pcma and alaw.from_ulaw(ulaw) in [p.payload for p in pcma]


async def test_on_hold_nothing_is_sent_but_marks_still_come_back(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    await asyncio.sleep(0.1)
    media.configure(params(peer.port, direction="recvonly", host="0.0.0.0"))  # they hold us the RFC 2543 way
    await asyncio.sleep(0.05)
    before = len(peer.got)
    media.play(tone(4) * 10)
    media.mark("held")
    events = await collect(media, lambda out: any(isinstance(e, MarkIn) for e in out))
    assert MarkIn("held") in events
    assert len(peer.got) - before <= 1
    media.configure(params(peer.port))  # unhold: the stream resumes, same SSRC, sequence continuous
    n = len(peer.got)
    await eventually(lambda: len(peer.got) >= n + 5)
    got = [p for _, p in peer.got]
    assert all((b.seq - a.seq) & 0xFFFF == 1 for a, b in zip(got, got[1:], strict=False))
    assert got[n].marker  # the timestamp jumped over the hold: marked


async def test_behind_nat_media_goes_back_to_where_it_came_from(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    media.configure(params(peer.port + 1, host="127.0.0.2"))  # the SDP names the phone's LAN address
    await send_paced(peer, media.local_port, [build(0, s, s * 160, 0x77, tone(5), s == 0) for s in range(5)])
    n = len(peer.got)
    await eventually(lambda: len(peer.got) >= n + 5)  # after probation the bot answers the source it learned
    assert media.stats()["strangers"] <= 1  # the first packet waits for probation


async def test_held_by_the_far_end_the_stream_does_not_time_out_like_a_dead_one() -> None:
    peer = await udp_peer()
    media = await RtpMedia.open(host="127.0.0.1", port_min=41000, port_max=41999, timeout_s=0.2, hold_timeout_s=30)
    try:
        media.configure(params(peer.port, direction="sendonly"))  # they sent a=recvonly: no RTP will come
        await asyncio.sleep(0.5)
        assert not media.timed_out and len(peer.got) >= 10
    finally:
        await media.close()
        assert peer.transport is not None
        peer.transport.close()


async def test_after_a_stalled_loop_the_sender_skips_instead_of_bursting(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    await eventually(lambda: len(peer.got) >= 5)
    time.sleep(0.2)  # noqa: ASYNC251 - the event loop blocked for 10 slots on purpose (a GC pause, a slow callback)
    n = len(peer.got)
    await eventually(lambda: len(peer.got) >= n + 10)
    got = [p for _, p in peer.got]
    assert all((b.seq - a.seq) & 0xFFFF == 1 for a, b in zip(got, got[1:], strict=False))  # no sequence gap
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(got, got[1:], strict=False)]
    jumps = [(i, step) for i, step in enumerate(steps) if step != 160]
    assert jumps and all(step >= 160 * 4 and got[i + 1].marker for i, step in jumps)  # the clock skipped, marked
    arrivals = [t for t, _ in peer.got[n:]]
    assert sum(b - a < 0.005 for a, b in zip(arrivals, arrivals[1:], strict=False)) <= 4  # no burst of the missed slots
    assert media.stats()["stalls"] >= 1


async def test_rtcp_from_the_far_end_is_read_for_liveness_and_our_loss(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    await eventually(lambda: len(peer.got) >= 3)
    ours = peer.got[0][1].ssrc
    block = struct.pack("!IB3sIII", ours, 12, (7).to_bytes(3, "big"), 1000, 80, 0) + bytes(4)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x4242) + block
    peer.send(b"\x80\xc9\x00\x01garbage!", media.local_port + 1)  # claims to be RTCP, is not
    peer.send(rr, media.local_port + 1)
    await eventually(lambda: media.stats().get("remote_lost") == 7)
    st = media.stats()
    assert st["rtcp_in"] == 1 and st["rtcp_bad"] == 1 and st["remote_jitter_ms"] == 10.0


class ScriptedHandle:
    def __init__(self, when: float, cb: Callable[[], None]) -> None:
        self.when, self.cb, self.cancelled = when, cb, False

    def cancel(self) -> None:
        self.cancelled = True


class ScriptedLoop:
    """Just what MediaClock uses of a loop: time() and call_at(), driven by the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[ScriptedHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb: Callable[[], None]) -> ScriptedHandle:
        h = ScriptedHandle(when, cb)
        self.timers.append(h)
        return h

    def fire(self, late_s: float = 0.0) -> None:
        h = self.timers.pop(0)
        assert not h.cancelled
        self.now = max(self.now, h.when + late_s)
        h.cb()


class FakeMedia:
    def __init__(self) -> None:
        self.ticks: list[tuple[float, int]] = []

    def tick(self, now: float, missed: int) -> None:
        self.ticks.append((now, missed))

    def fail(self) -> None:
        pass


def test_media_clock_on_a_scripted_loop_skips_a_stall_and_keeps_its_grid() -> None:
    loop = ScriptedLoop()
    clock = MediaClock(loop)  # type: ignore[arg-type]
    a, b = FakeMedia(), FakeMedia()
    clock.add(a)  # type: ignore[arg-type]
    clock.add(b)  # type: ignore[arg-type]
    for _ in range(5):
        loop.fire()
    loop.fire(late_s=0.045)  # late by two slots: caught up, not skipped
    loop.fire()
    loop.fire()
    loop.fire(late_s=0.21)  # a stall of ten slots: skipped
    loop.fire()
    assert [m for _, m in a.ticks] == [0, 0, 0, 0, 0, 0, 0, 0, 10, 0] and a.ticks == b.ticks
    assert clock.stalls == 1
    (due,) = [h.when for h in loop.timers]
    assert abs((due - 100.0) / 0.02 - round((due - 100.0) / 0.02)) < 1e-6  # still on the 20 ms grid
    clock.remove(a)  # type: ignore[arg-type]
    assert not loop.timers[0].cancelled
    clock.remove(b)  # type: ignore[arg-type]
    assert loop.timers[0].cancelled  # nobody left: no timer runs


async def test_send_dtmf_keys_rfc4733_events_in_place_of_audio(call: tuple[RtpMedia, Peer]) -> None:
    media, peer = call
    await eventually(lambda: len(peer.got) >= 2)
    assert media.send_dtmf("5") and media.send_dtmf("#", duration_ms=60)
    media.play(tone(8) * 3)  # waits for the key presses
    await eventually(lambda: sum(p.payload == tone(8) for _, p in peer.got) == 3)
    got = [p for _, p in peer.got]
    dec = DtmfDecoder()
    digits = [d for p in got if p.payload_type == 101 and (d := dec.feed(p.ssrc, p.timestamp, p.payload))]
    assert digits == ["5", "#"]
    events = [p for p in got if p.payload_type == 101]
    assert [p.marker for p in events].count(True) == 2 and len({p.timestamp for p in events}) == 2
    first_tone = next(i for i, p in enumerate(got) if p.payload == tone(8))
    assert all(p.payload_type == 101 for p in got[first_tone - len(events) : first_tone])  # audio waited for the keys
    assert all((b.seq - a.seq) & 0xFFFF == 1 for a, b in zip(got, got[1:], strict=False))
    media.configure(MediaParams(("127.0.0.1", peer.port), 0, "PCMU", None, 20, "sendrecv"))
    assert not media.send_dtmf("1")  # no telephone-event agreed


async def test_comfort_noise_is_ignored_but_keeps_the_call_alive() -> None:
    peer = await udp_peer()
    media = await RtpMedia.open(host="127.0.0.1", port_min=41000, port_max=41999, timeout_s=0.4)
    try:
        media.configure(params(peer.port))
        packets = [build(0, 0, 0, 9, tone(3), True)] + [build(13, s, s * 160, 9, b"\x40", False) for s in range(1, 9)]
        reader = asyncio.create_task(collect(media, lambda out: False, within_s=5))
        await send_paced(peer, media.local_port, packets, every_s=0.15)  # 1.2 s of CN only, three timeouts' worth
        assert not media.timed_out
        events = await reader  # then nothing: the media timeout ends the stream
        assert media.timed_out and media.stats()["cn_in"] == 8
        frames = [e.frame for e in events if isinstance(e, AudioIn)]
        assert tone(3) in frames and all(f in (tone(3), SIL) for f in frames)  # CN never became audio
    finally:
        await media.close()
        assert peer.transport is not None
        peer.transport.close()


async def test_dual_stack_socket_talks_to_an_ipv4_peer() -> None:
    peer = await udp_peer()
    try:
        media = await RtpMedia.open(host="::", port_min=41000, port_max=41999)
    except OSError:
        pytest.skip("no IPv6 on this machine")
    try:
        media.configure(params(peer.port))  # the SDP says 127.0.0.1; the socket sees ::ffff:127.0.0.1
        await send_paced(peer, media.local_port, [build(0, s, s * 160, 0x42, tone(6), s == 0) for s in range(5)])
        events = await collect(media, lambda out: any(isinstance(e, AudioIn) and e.frame == tone(6) for e in out))
        assert events and media.stats()["strangers"] == 0
        await eventually(lambda: len(peer.got) >= 3)
    finally:
        await media.close()
        assert peer.transport is not None
        peer.transport.close()
