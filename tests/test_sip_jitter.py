"""The SIP jitter buffer on a scripted clock: packets arrive at scripted 20 ms ticks, one frame
comes out per tick. Frames carry their own number so order, loss and concealment are visible."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.carriers.sip.jitter import FRAME, JitterBuffer

SIL = b"\xff" * FRAME


def frame(n: int) -> bytes:
    return bytes([n % 250]) * FRAME


def run(arrivals: dict[int, list[tuple[int, bool]]], ticks: int, jb: JitterBuffer | None = None, ts0: int = 0) -> tuple[list[bytes | None], JitterBuffer]:
    """arrivals: tick -> [(frame number, marker)] pushed before that tick's pop."""
    jb = jb or JitterBuffer()
    out: list[bytes | None] = []
    for t in range(ticks):
        for n, marker in arrivals.get(t, []):
            jb.push((ts0 + n * FRAME) & 0xFFFFFFFF, frame(n), marker)
        out.append(jb.tick())
    return out, jb


def numbers(out: list[bytes | None]) -> list[int | None]:
    return [None if f is None or f == SIL else f[0] for f in out]


def test_in_order_stream_plays_after_40_ms_in_order() -> None:
    out, jb = run({t: [(t, t == 0)] for t in range(50)}, 55)
    got = numbers(out)
    assert got[:2] == [None, None]  # two ticks of build-up: 40 ms
    assert got[2:52] == list(range(50))
    assert jb.played == 50 and jb.concealed == 1 and jb.late == 0  # the end of the stream concealed once


def test_reordered_and_duplicated_packets_come_out_in_order() -> None:
    order = {0: [(0, True)], 1: [(2, False)], 2: [(1, False), (1, False)], 3: [(3, False), (2, False)], 4: [(5, False)], 5: [(4, False)]}
    order.update({t: [(t, False)] for t in range(6, 30)})
    out, jb = run(order, 32)
    assert numbers(out)[2:32] == list(range(30))
    assert jb.duplicates == 2 and jb.concealed == 0


def test_a_lost_frame_is_concealed_by_the_last_then_silence() -> None:
    arrivals = {t: [(t, t == 0)] for t in range(40) if t not in (10, 20, 21, 22)}
    out, jb = run(arrivals, 42)
    got = numbers(out)[2:42]
    assert got[10] == 9 and got[20:23] == [19, None, None] and got[23] == 23
    assert jb.concealed >= 4 and jb.late == 0


def test_late_packets_grow_the_target_up_to_200_ms_and_calm_shrinks_it() -> None:
    rng = random.Random(7)
    # internet-style jitter: each packet delayed 0-160 ms
    arrivals: dict[int, list[tuple[int, bool]]] = {}
    for n in range(1500):
        arrivals.setdefault(n + (rng.randint(0, 8) if n else 0), []).append((n, n == 0))
    out, jb = run(arrivals, 1600)
    assert jb.late > 0 and 120 <= jb.target * 20 <= 200
    played = [x for x in numbers(out) if x is not None]
    # after the target settled nothing is concealed any more: the last 500 frames all play, in order
    tail = [n % 250 for n in range(1000, 1500)]
    assert played[-501:-1] == tail and played[-1] == tail[-1]  # (the stream's end concealed by the last frame)
    # then a calm LAN: 12 s without late packets shrink the target again
    target = jb.target
    run({t: [(1500 + t, False)] for t in range(700)}, 700, jb=jb)
    assert jb.target < target


def test_new_talk_spurt_with_a_timestamp_jump_reanchors() -> None:
    arrivals = {t: [(t, t == 0)] for t in range(20)}
    arrivals.update({t: [(t + 5000, t == 40)] for t in range(40, 60)})  # silence suppressed for 20 ticks, ts jumped 100 s
    out, jb = run(arrivals, 65)
    got = numbers(out)
    assert got[2:22] == list(range(20))
    assert [x for x in got[40:] if x is not None][:20] == [(t + 5000) % 250 for t in range(40, 60)]
    assert jb.late == 0


def test_timestamp_wrap_is_seamless() -> None:
    out, jb = run({t: [(t, t == 0)] for t in range(30)}, 32, ts0=0xFFFFFFFF - 10 * FRAME + 1)
    assert numbers(out)[2:32] == list(range(30)) and jb.resyncs == 0


def test_30_ms_and_10_ms_packets_are_cut_into_20_ms_frames() -> None:
    jb = JitterBuffer()
    audio = bytes(range(200)) * 24  # 600 ms
    out = []
    for i in range(0, len(audio), 240):  # 30 ms packets, two every three ticks
        jb.push(i, audio[i : i + 240], i == 0)
        out.append(jb.tick())
        if (i // 240) % 2:
            out.append(jb.tick())
    out += [jb.tick() for _ in range(4)]
    joined = b"".join(f for f in out if f is not None and f != SIL)
    assert joined.startswith(audio) and jb.concealed <= 1
    jb10 = JitterBuffer()
    out10 = []
    for i in range(0, len(audio), 80):
        jb10.push(i, audio[i : i + 80], i == 0)
        if (i // 80) % 2:
            out10.append(jb10.tick())
    out10 += [jb10.tick() for _ in range(3)]
    assert b"".join(f for f in out10 if f is not None and f != SIL).startswith(audio)


def test_burst_after_a_network_stall_keeps_the_delay_bounded() -> None:
    arrivals = {t: [(t, t == 0)] for t in range(10)}
    arrivals[60] = [(n, False) for n in range(10, 70)]  # 1 s of packets at once
    arrivals.update({t: [(t + 10, False)] for t in range(61, 100)})
    _, jb = run(arrivals, 100)
    assert jb.dropped > 0 and jb.depth <= jb.max_frames + 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 12), min_size=60, max_size=200), st.floats(0, 0.3), st.integers(0, 2**32 - 1))
def test_any_network_keeps_order_and_one_frame_per_tick(delays: list[int], loss: float, ts0: int) -> None:
    rng = random.Random(len(delays))
    arrivals: dict[int, list[tuple[int, bool]]] = {}
    for n, d in enumerate(delays):
        if rng.random() >= loss:
            arrivals.setdefault(max(0, n + d), []).append((n, n == 0))
    out, jb = run(arrivals, len(delays) + 20, ts0=ts0)
    assert len(out) == len(delays) + 20
    assert all(f is None or len(f) == FRAME for f in out)
    played = [f[0] for f in out if f is not None and f != SIL]
    distinct = [p for i, p in enumerate(played) if i == 0 or p != played[i - 1]]  # concealment repeats a frame
    backwards = sum(b < a for a, b in zip(distinct, distinct[1:], strict=False))
    assert backwards <= jb.anchors - 1  # never backwards in time, but where the stream was re-anchored after a silence
    assert jb.depth <= jb.max_frames * 4 + 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 1500), st.booleans(), st.integers(0, 3)), max_size=80))
def test_hostile_packets_never_raise_and_memory_stays_bounded(packets: list[tuple[int, int, bool, int]]) -> None:
    jb = JitterBuffer()
    base = packets[0][0] if packets else 0
    for i, (ts, size, marker, ticks) in enumerate(packets):
        # half near the stream's clock (reordered, odd sizes, overlapping), half anywhere in the 32 bits
        stamp = (base + i * 160 + ts % 4000 - 2000) & 0xFFFFFFFF if i % 2 else ts
        jb.push(stamp, bytes([i % 200]) * size, marker)
        for _ in range(ticks):
            f = jb.tick()
            assert f is None or len(f) == FRAME
    assert len(jb._frames) + len(jb._partial) <= jb.max_frames * 4 + 16


def test_a_sender_clock_off_by_half_a_percent_costs_a_frame_now_and_then_not_delay() -> None:
    for drift in (-0.005, 0.005):  # the phone's 8 kHz clock runs fast, then slow
        rng = random.Random(3)
        arrivals: dict[int, list[tuple[int, bool]]] = {}
        for n in range(3000):  # 60 s
            at_ms = n * 20 * (1 + drift) + 5 + abs(rng.gauss(0, 2))
            arrivals.setdefault(int(at_ms // 20), []).append((n, n == 0))
        out, jb = run(arrivals, 3040)
        assert jb.target <= 3  # drift is not taken for jitter: the delay stays LAN-sized
        # one frame a drift's worth (60 s * 0.5 % = 300 ms = 15 frames) is dropped or concealed, not more
        assert jb.dropped + jb.concealed <= 20
        played = [x for x in numbers(out) if x is not None]
        assert len(played) >= 3000 - 20
