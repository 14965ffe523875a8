"""The caller's script (bot/simulator.py) is carrier-neutral: any ``CallerLeg`` can carry it.
Here an in-memory leg plays a bot that greets, answers once the caller stops talking and
barges nowhere; the report says what a caller on any carrier would have heard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bot.simulator import BotAudio, BotClear, BotMark, CallReport, Dtmf, run_script
from media import frames, mulaw

LOUD = mulaw.encode(b"\x00\x40" * 160)  # 20 ms far above the script's speech threshold
GREETING, REPLY = b"\x11" * 800, b"\x22" * 1600  # 100 ms, 200 ms


class MemoryLeg:
    """A bot behind a queue: greets at start, replies to each utterance (after its first quiet
    frame) and to each DTMF key, and records what the caller sent."""

    def __init__(self) -> None:
        self.q: asyncio.Queue[BotAudio | BotMark | BotClear | None] = asyncio.Queue()
        self.sent: list[str] = []  # "loud", "quiet", "dtmf:1", "mark:x", "hangup"
        self._closed = False
        self.replies = 0

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        self.q.put_nowait(BotAudio(GREETING))
        self.q.put_nowait(BotMark("greeting"))

    async def bot_events(self) -> AsyncIterator[BotAudio | BotMark | BotClear]:
        while (ev := await self.q.get()) is not None:
            yield ev

    def _reply(self) -> None:
        self.replies += 1
        self.q.put_nowait(BotAudio(REPLY))
        self.q.put_nowait(BotMark(f"t{self.replies}"))

    async def send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionError("closed")
        assert len(frame) == frames.FRAME_BYTES
        loud = frame == LOUD
        if not loud and self.sent and self.sent[-1] == "loud":
            self._reply()
        self.sent.append("loud" if loud else "quiet")

    async def send_dtmf(self, digit: str) -> None:
        self.sent.append(f"dtmf:{digit}")
        self._reply()

    async def send_mark(self, name: str) -> None:
        self.sent.append(f"mark:{name}")

    async def hang_up(self) -> None:
        self.sent.append("hangup")
        self._closed = True
        self.q.put_nowait(None)


async def test_the_script_runs_a_call_on_any_leg():
    leg, report = MemoryLeg(), CallReport(call_sid="X1")
    utterance = LOUD * 10 + mulaw.silence(160) * 5
    await asyncio.wait_for(run_script(leg, report, [utterance, Dtmf("1")], gap_s=0.0, barge_in_after_ms=None,
                                      max_wait_s=5.0, quiet_s=0.1, dtmf={}), 20)
    assert report.greeting_ms is not None and len(report.turns) == 2
    assert all(t.first_audio_ms is not None for t in report.turns)  # each turn was answered
    assert report.marks_echoed == ["greeting", "t1", "t2"] == [s[5:] for s in leg.sent if s.startswith("mark:")]
    assert leg.sent.count("loud") == 10 and "dtmf:1" in leg.sent and leg.sent[-1] == "hangup"
    heard = report.heard
    assert heard.count(b"\x11") == len(GREETING) and heard.count(b"\x22") == 2 * len(REPLY)  # played whole, in order
    assert heard.index(b"\x11") < heard.index(b"\x22") and not report.hung_up_by_bot


async def test_a_bot_that_closes_ends_the_script():
    leg, report = MemoryLeg(), CallReport(call_sid="X2")
    leg.q.put_nowait(None)  # the bot hangs up after its greeting
    await asyncio.wait_for(run_script(leg, report, [LOUD * 5], gap_s=0.0, barge_in_after_ms=None,
                                      max_wait_s=5.0, quiet_s=0.1, dtmf={}), 20)
    assert report.hung_up_by_bot and "hangup" not in leg.sent
