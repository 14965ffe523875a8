"""The caller's side of a simulated call, whatever the carrier: the script and the report.

``run_script(leg, report, utterances, ...)`` plays a caller: the WAVs as real-time 20 ms
frames with silence between them, DTMF, barge-in, and the bot's audio played on a
simulated playback clock that echoes marks as a carrier does (at once for audio dropped
by a ``clear``); it fills a ``CallReport`` (latency per turn, clears, what was heard).
A carrier's simulator (``bot/carriers/twilio/simulator.py``: ``simulate_call``) places the
call and hands the script a ``CallerLeg`` speaking its wire format with the carrier's own
codec in the client role. ``python -m bot call`` (bot/cli_call.py) runs it by hand.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from media import frames, mulaw, resample, wav

FRAME_S = 0.02
SILENCE = mulaw.silence(frames.FRAME_BYTES)


@dataclass(frozen=True)
class Dtmf:
    """A step of a simulated call: keys pressed (sent as the carrier sends DTMF)."""

    digits: str


class BotAudio(NamedTuple):
    audio: bytes  # 8 kHz mu-law, one or more 20 ms frames


class BotMark(NamedTuple):
    name: str  # echo it once everything before it was played


class BotClear(NamedTuple):
    """Drop the bot's audio not yet played (barge-in)."""


class CallerLeg(Protocol):
    """The caller's end of one connected call, in a carrier's wire format."""

    @property
    def closed(self) -> bool:
        """The bot (or the network) ended the call."""

    async def start(self) -> None:
        """Whatever opens the call's media (Twilio: ``connected`` and ``start``)."""

    def bot_events(self) -> AsyncIterator[BotAudio | BotMark | BotClear]:
        """What the bot sends, until it closes the call."""

    async def send_frame(self, frame: bytes) -> None:
        """One 20 ms frame of the caller's audio (ConnectionError or RuntimeError once closed)."""

    async def send_dtmf(self, digit: str) -> None: ...

    async def send_mark(self, name: str) -> None:
        """Echo the bot's mark ``name``: everything before it was played."""

    async def hang_up(self) -> None: ...


@dataclass
class TurnReport:
    index: int
    speech_start_s: float
    speech_end_s: float
    first_audio_ms: float | None = None  # end of caller speech -> first bot audio after it
    clears_ms: list[float] = field(default_factory=list)  # speech start -> each clear


@dataclass
class CallReport:
    call_sid: str = ""
    stream_sid: str = ""
    rejected: bool = False
    unreachable: bool = False  # nothing answered at the URL (no server there): no call took place
    error: str = ""
    greeting_ms: float | None = None
    turns: list[TurnReport] = field(default_factory=list)
    clears: int = 0
    marks_sent_by_bot: list[str] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    hung_up_by_bot: bool = False
    action_twiml: str = ""  # the <Connect action> request's answer, when the simulator asked (follow_action)
    stale_audio_bytes: int = 0  # bot audio received after a clear, before the caller's turn ended
    heard: bytes = b""  # mu-law timeline of what the caller heard
    events: list[tuple[float, str, str]] = field(default_factory=list)
    send_late_ms: list[float] = field(default_factory=list)  # how late our own 20 ms sends were
    bot_media_gaps_ms: list[float] = field(default_factory=list)
    bot_media_s: list[float] = field(default_factory=list)  # arrival of each bot media message, s since stream start
    bot_media_frames: list[int] = field(default_factory=list)  # 20 ms frames in each (MEDIA_FRAMES_PER_MESSAGE)


class Playback:
    """The carrier's side of the bot's audio: a queue played at 8 bytes/ms."""

    def __init__(self) -> None:
        self.queue: list[bytes | str] = []
        self.heard = bytearray()

    def tick(self, n: int = frames.FRAME_BYTES) -> list[str]:
        """Play ``n`` bytes (one 20 ms tick); return marks reached."""
        reached: list[str] = []
        played = 0
        while self.queue:
            head = self.queue[0]
            if isinstance(head, str):
                reached.append(head)
                self.queue.pop(0)
                continue
            if played == n:
                break
            take = min(n - played, len(head))
            self.heard += head[:take]
            played += take
            if take == len(head):
                self.queue.pop(0)
            else:
                self.queue[0] = head[take:]
        if played < n:
            self.heard += SILENCE if played == 0 and n == len(SILENCE) else SILENCE[: n - played]
        return reached

    def clear(self) -> list[str]:
        marks = [x for x in self.queue if isinstance(x, str)]
        self.queue.clear()
        return marks

    @property
    def busy(self) -> bool:
        return any(isinstance(x, bytes) for x in self.queue)


def load_ulaw(item: bytes | str | Path) -> bytes:
    if isinstance(item, bytes):
        return _wav_to_ulaw(item)
    path = Path(item)
    st = path.stat()
    return _load_file(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _load_file(path: str, mtime_ns: int, size: int) -> bytes:  # noqa: ARG001 - mtime and size key the cache: an edited file is read again
    """Each caller WAV is read and resampled once per process, not once per call."""
    return _wav_to_ulaw(Path(path).read_bytes())


def _wav_to_ulaw(data: bytes) -> bytes:
    audio = wav.read(data)
    return mulaw.encode(resample.resample(audio.pcm16, audio.rate, 8000))


@functools.lru_cache(maxsize=256)
def _prepared(ulaw: bytes) -> tuple[tuple[bytes, ...], int]:
    """An utterance as frames and its end-of-speech frame: computed once per distinct
    utterance, shared by every call that speaks it."""
    return tuple(frames.split(ulaw)), speech_end_frame(ulaw)


def speech_end_frame(ulaw: bytes, threshold: float = 300.0) -> int:
    """Index of the frame after the last one with speech energy (RMS over
    ``threshold`` of 32768, about -40 dBFS): where the caller stops talking, so
    that latency counts from the end of speech, not from the end of the file."""
    import numpy as np

    fr = frames.split(ulaw)
    last = 0
    for i, f in enumerate(fr):
        x = np.frombuffer(mulaw.decode(f), "<i2").astype(np.float32)
        if float(np.sqrt(np.mean(x * x))) > threshold:
            last = i + 1
    return last or len(fr)


@dataclass
class _StreamState:
    """What the reader task tells the caller's script."""

    last_audio: float | None = None  # arrival of the bot's latest audio (monotonic s)
    first_audio: float | None = None  # the current reply's first audio
    closed: bool = False  # the bot closed the call
    stale_window: bool = False  # a clear arrived; audio until the caller's turn ends is stale


async def run_script(
    leg: CallerLeg, report: CallReport, utterances: list[bytes | Dtmf], *, gap_s: float, barge_in_after_ms: int | None,
    max_wait_s: float, quiet_s: float, dtmf: dict[int, str],
) -> None:
    """Be the caller on ``leg`` until the script ends (then hang up) or the bot ends the call.
    ``utterances``: mu-law audio or ``Dtmf`` steps; the other arguments as ``simulate_call``'s."""
    caller = _Caller(leg, report, barge_in_after_ms=barge_in_after_ms, max_wait_s=max_wait_s, quiet_s=quiet_s)
    await caller.run(utterances, gap_s=gap_s, dtmf=dtmf)


class _Caller:
    """One scripted caller: a reader task takes the bot's events into ``report`` and the
    playback; the script sends frames on the real-time clock and waits for the replies."""

    def __init__(self, leg: CallerLeg, report: CallReport, *, barge_in_after_ms: int | None, max_wait_s: float, quiet_s: float) -> None:
        self.leg, self.report = leg, report
        self.barge_in_after_ms, self.max_wait_s, self.quiet_s = barge_in_after_ms, max_wait_s, quiet_s
        self.playback = Playback()
        self.t0 = asyncio.get_running_loop().time()
        self.state = _StreamState()
        self.next_t = 0.0  # when the next frame is due (loop time)

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    # ------------------------------------------------------------------ the bot's side
    async def read(self) -> None:
        last = None
        async for ev in self.leg.bot_events():
            t = self.now()
            if isinstance(ev, BotAudio):
                self._audio(ev.audio, t, last)
                last = t
            elif isinstance(ev, BotMark):
                self.report.marks_sent_by_bot.append(ev.name)
                self.playback.queue.append(ev.name)
            elif isinstance(ev, BotClear):
                await self._clear(t)
        self.state.closed = True

    def _audio(self, audio: bytes, t: float, last: float | None) -> None:
        report, state = self.report, self.state
        self.playback.queue.append(audio)
        if last is not None:
            report.bot_media_gaps_ms.append((t - last) * 1000)
        report.bot_media_s.append(t)
        report.bot_media_frames.append(max(1, -(-len(audio) // frames.FRAME_BYTES)))
        if state.first_audio is None:
            state.first_audio = t
        state.last_audio = t
        if state.stale_window:
            report.stale_audio_bytes += len(audio)

    async def _clear(self, t: float) -> None:
        report = self.report
        report.clears += 1
        report.events.append((t, "clear", ""))
        if report.turns:
            report.turns[-1].clears_ms.append((t - report.turns[-1].speech_start_s) * 1000)
        self.state.stale_window = True
        for name in self.playback.clear():
            await self.echo(name)

    async def echo(self, name: str) -> None:
        self.report.marks_echoed.append(name)
        self.report.events.append((self.now(), "mark", name))
        if not self.leg.closed:
            await self.leg.send_mark(name)

    # ------------------------------------------------------------------ the caller's side
    async def frame(self, payload: bytes) -> bool:
        """Send one 20 ms frame on the real-time clock and play 20 ms."""
        if self.state.closed:
            return False
        self.next_t += FRAME_S
        delay = self.next_t - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self.report.send_late_ms.append(-delay * 1000)
        try:
            await self.leg.send_frame(payload)
        except (ConnectionError, RuntimeError):
            self.state.closed = True
            return False
        for name in self.playback.tick():
            await self.echo(name)
        return True

    async def wait_reply(self, since: float) -> None:
        """Silence until the bot has spoken and gone quiet (bounded by max_wait_s)."""
        state = self.state
        deadline = self.now() + self.max_wait_s
        while self.now() < deadline:
            if not await self.frame(SILENCE):
                return
            la = state.last_audio
            if self.barge_in_after_ms is not None and state.first_audio is not None and state.first_audio >= since:
                if self.now() - state.first_audio >= self.barge_in_after_ms / 1000:
                    return
            if la is not None and la >= since and not self.playback.busy and self.now() - la >= self.quiet_s:
                return

    async def run(self, utterances: list[bytes | Dtmf], *, gap_s: float, dtmf: dict[int, str]) -> None:
        report, state = self.report, self.state
        await self.leg.start()
        read_task = asyncio.create_task(self.read())
        self.next_t = asyncio.get_running_loop().time()
        try:
            state.first_audio = None
            await self.wait_reply(0.0)
            if state.first_audio is not None:
                report.greeting_ms = state.first_audio * 1000
            for i, audio in enumerate(utterances):
                if state.closed:
                    break
                turn = TurnReport(i + 1, self.now(), 0.0)
                report.turns.append(turn)
                state.stale_window = False
                if isinstance(audio, Dtmf):
                    await self._keys(turn, audio)
                    continue
                await self._speak(i, turn, audio, dtmf.get(i, ""))
                if self.barge_in_after_ms is None:
                    await self._gap(gap_s)
            report.hung_up_by_bot = state.closed
            if not state.closed:
                await self.leg.hang_up()
        finally:
            report.heard = bytes(self.playback.heard)
            read_task.cancel()
            try:
                await read_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the reader's end (a dropped connection) is already state.closed
                pass

    async def _keys(self, turn: TurnReport, step: Dtmf) -> None:
        """A DTMF step: the keys, then the reply."""
        turn.speech_end_s, self.state.first_audio = self.now(), None
        for d in step.digits:
            await self.leg.send_dtmf(d)
        await self._reply(turn)

    async def _speak(self, i: int, turn: TurnReport, audio: bytes, keys: str) -> None:
        """An utterance in real time (its end of speech marked), any keys after it, then the reply."""
        state = self.state
        utterance, end = _prepared(audio)
        for k, fr in enumerate(utterance):
            if k == end:
                turn.speech_end_s = self.now()
                state.stale_window = False
                state.first_audio = None
            if not await self.frame(fr):
                break
        if not turn.speech_end_s:
            turn.speech_end_s = self.now()
            state.first_audio = None
        state.stale_window = False
        self.report.events.append((turn.speech_end_s, "speech_end", str(i + 1)))
        for d in keys:
            await self.leg.send_dtmf(d)
        await self._reply(turn)

    async def _reply(self, turn: TurnReport) -> None:
        await self.wait_reply(turn.speech_end_s)
        if self.state.first_audio is not None:
            turn.first_audio_ms = (self.state.first_audio - turn.speech_end_s) * 1000

    async def _gap(self, gap_s: float) -> None:
        for _ in range(int(gap_s / FRAME_S)):
            if not await self.frame(SILENCE):
                break


def timeline_text(r: CallReport) -> str:
    if r.rejected:
        return f"call {r.call_sid}: rejected ({r.error})"
    lines = [f"call {r.call_sid} stream {r.stream_sid}"]
    lines.append(f"  greeting: first audio {r.greeting_ms:.0f} ms after start" if r.greeting_ms is not None else "  greeting: none heard")
    for t in r.turns:
        fa = f"{t.first_audio_ms:.0f} ms" if t.first_audio_ms is not None else "no reply"
        clears = f", clear at {', '.join(f'{c:.0f}' for c in t.clears_ms)} ms after speech start" if t.clears_ms else ""
        lines.append(f"  turn {t.index}: speech {t.speech_start_s:.2f}-{t.speech_end_s:.2f} s; end of speech -> first bot audio {fa}{clears}")
    fallbacks = [m for m in r.marks_echoed if m.startswith("fallback")]
    lines.append(f"  marks echoed: {len(r.marks_echoed)} ({', '.join(r.marks_echoed)})")
    lines.append(f"  clears: {r.clears}; fallbacks: {len(fallbacks)}; stale audio after clear: {r.stale_audio_bytes} bytes")
    lines.append(f"  ended by: {'bot (hang-up/transfer)' if r.hung_up_by_bot else 'caller'}; heard {len(r.heard) / 8000:.1f} s")
    if r.error:
        lines.append(f"  error: {r.error}")
    return "\n".join(lines)


