"""The paced writer: frames at real time, little lead, marks in order, clear drops."""

from __future__ import annotations

import asyncio
import time

from bot.playout import Playout
from tests.conftest import eventually


class Sink:
    def __init__(self) -> None:
        self.items: list[tuple[float, str, object]] = []

    async def media(self, b: bytes) -> None:
        self.items.append((time.monotonic(), "media", b))

    async def mark(self, name: str) -> None:
        self.items.append((time.monotonic(), "mark", name))

    async def clear(self) -> None:
        self.items.append((time.monotonic(), "clear", None))


async def test_paced_in_real_time_with_marks():
    sink = Sink()
    p = Playout(sink.media, sink.mark, sink.clear, lead_ms=60)
    task = asyncio.create_task(p.run())
    t0 = time.monotonic()
    p.enqueue_audio(b"\x01" * 1600)  # 10 frames = 200 ms
    p.enqueue_mark("a")
    p.enqueue_audio(b"\x02" * 810)  # 5 frames + 10 bytes -> padded to 6 at the mark
    p.enqueue_mark("b")
    await eventually(lambda: sink.items and sink.items[-1][2] == "b", 10, 0.01)
    task.cancel()
    kinds = [k for _, k, _ in sink.items]
    assert kinds == ["media"] * 10 + ["mark"] + ["media"] * 6 + ["mark"]
    assert sink.items[16][2][10:] == b"\xff" * 150  # padded with mu-law silence
    # 16 frames = 320 ms of audio, sent at most 60 ms ahead of real time
    elapsed = sink.items[-1][0] - t0
    assert 0.320 - 0.060 - 0.03 <= elapsed <= 0.320 + 1.0  # never early; late only on a busy machine
    assert p.frames_sent == 16


async def test_clear_drops_queue_and_stale_frame():
    sink = Sink()
    p = Playout(sink.media, sink.mark, sink.clear, lead_ms=20)
    task = asyncio.create_task(p.run())
    p.enqueue_audio(b"\x01" * 160 * 50)  # 1 s
    p.enqueue_mark("end")
    await asyncio.sleep(0.1)
    dropped = await p.clear()
    sent_before = sum(1 for _, k, _ in sink.items if k == "media")
    await asyncio.sleep(0.1)
    task.cancel()
    assert dropped == ["end"]
    assert sum(1 for _, k, _ in sink.items if k == "media") == sent_before  # nothing after the clear
    assert sink.items[-1][1] == "clear"
    assert p.idle and 4 <= sent_before <= 9


async def test_many_calls_share_one_ticker_and_a_cancelled_writer_harms_no_other():
    """20 writers, one timer: far fewer timer wake-ups than frames; cancelling one writer
    mid-wait leaves the others paced to the end."""
    from bot.playout import Ticker

    ticker = Ticker()
    sinks = [Sink() for _ in range(20)]
    plays = [Playout(s.media, s.mark, s.clear, ticker=ticker) for s in sinks]
    tasks = [asyncio.create_task(p.run()) for p in plays]
    t0 = time.monotonic()
    for p in plays:
        p.enqueue_audio(b"\x01" * 160 * 15)  # 300 ms each
        p.enqueue_mark("end")
    await asyncio.sleep(0.1)
    tasks[0].cancel()
    await eventually(lambda: all(s.items and s.items[-1][2] == "end" for s in sinks[1:]), 10, 0.01)
    for t in tasks:
        t.cancel()
    frames = sum(p.frames_sent for p in plays[1:])
    assert frames == 19 * 15
    assert ticker.fired < frames / 5  # one wake-up serves every writer due at that tick
    for s in sinks[1:]:
        assert s.items[-1][0] - t0 >= 0.300 - 0.060 - 0.03  # never early


async def test_frames_per_message_joins_frames_but_never_across_a_mark():
    sink = Sink()
    p = Playout(sink.media, sink.mark, sink.clear, frames_per_message=3)
    task = asyncio.create_task(p.run())
    p.enqueue_audio(b"\x01" * 160 * 7)
    p.enqueue_mark("a")
    p.enqueue_audio(b"\x02" * 160 * 2)
    p.enqueue_mark("b")
    await eventually(lambda: sink.items and sink.items[-1][2] == "b", 10, 0.01)
    task.cancel()
    sizes = [len(x) // 160 if k == "media" else x for _, k, x in sink.items]
    assert sizes == [3, 3, 1, "a", 2, "b"]
    assert p.frames_sent == 9
    dropped = await p.clear()  # nothing left: the clear drops no mark
    assert dropped == [] and sink.items[-1][1] == "clear"
