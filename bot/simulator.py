"""Call simulator: does what Twilio does, against our own server.

    python -m bot call A.wav [--dtmf 1] [B.wav ...] --url http://127.0.0.1:8080 [--out heard.wav]

Signed webhook, reads the TwiML, signed websocket, ``connected``/``start``, the
WAVs as real-time 20 ms frames with silence between them, and the bot's audio
played on a simulated playback clock that echoes marks as Twilio does (at once
for audio dropped by a ``clear``). Used by tests and benchmarks as a library
(``simulate_call``), and by hand from the CLI.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from twilio.request_validator import RequestValidator

from media import frames, mulaw, resample, wav

FRAME_S = 0.02
SILENCE = mulaw.silence(frames.FRAME_BYTES)
SILENCE_B64 = base64.b64encode(SILENCE).decode()
# One inbound media message, rendered without building a dict and json.dumps for each
# 20 ms frame (bench/calls/ drives hundreds of calls from one process).
MEDIA_JSON = (
    '{"event":"media","sequenceNumber":"%d","streamSid":"%s",'
    '"media":{"track":"inbound","chunk":"%d","timestamp":"%d","payload":"%s"}}'
)


@dataclass(frozen=True)
class Dtmf:
    """A step of a simulated call: keys pressed (sent as Twilio ``dtmf`` events)."""

    digits: str


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
    """Twilio's side of outbound audio: a queue played at 8 bytes/ms."""

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
def _load_file(path: str, mtime_ns: int, size: int) -> bytes:
    """Each caller WAV is read and resampled once per process, not once per call."""
    return _wav_to_ulaw(Path(path).read_bytes())


def _wav_to_ulaw(data: bytes) -> bytes:
    audio = wav.read(data)
    return mulaw.encode(resample.resample(audio.pcm16, audio.rate, 8000))


@functools.lru_cache(maxsize=256)
def _prepared(ulaw: bytes) -> tuple[tuple[bytes, ...], tuple[str, ...], int]:
    """An utterance as frames, their base64 payloads, and its end-of-speech frame:
    computed once per distinct utterance, shared by every call that speaks it."""
    fr = tuple(frames.split(ulaw))
    return fr, tuple(base64.b64encode(f).decode() for f in fr), speech_end_frame(ulaw)


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


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def simulate_call(
    url: str,
    utterances: Sequence[bytes | str | Path | Dtmf],
    *,
    public_url: str | None = None,
    auth_token: str | None = None,
    from_number: str = "+15551234567",
    to_number: str = "+15557654321",
    gap_s: float = 0.6,
    barge_in_after_ms: int | None = None,
    max_wait_s: float = 20.0,
    quiet_s: float = 1.0,
    dtmf: dict[int, str] | None = None,
    session: aiohttp.ClientSession | None = None,
    separate_connections: bool = False,
    stream_to: str | None = None,
    follow_action: bool = False,
    action_to: str | None = None,
) -> CallReport:
    """Place one simulated call. ``barge_in_after_ms``: start each next utterance that
    long after the bot's reply audio begins (interrupting it), instead of waiting for
    the bot to finish. ``dtmf``: {utterance index: digits} sent after that utterance; a
    ``Dtmf`` among ``utterances`` is a step of its own (keys pressed, then the reply).

    As Twilio does, ``separate_connections`` sends the webhook, the websocket and the
    <Connect action> request each on a new connection (by default they share the
    session's pool, so one server process may see them all). ``stream_to`` /
    ``action_to``: another server (instance) for the websocket / the action request.
    ``follow_action``: once the stream ends, ask the <Connect action> URL what to do
    (``report.action_twiml``), as Twilio does."""
    url = url.rstrip("/")
    public = (public_url or url).rstrip("/")
    report = CallReport(call_sid=_sid("CA"), stream_sid=_sid("MZ"))
    account = _sid("AC")
    validator = RequestValidator(auth_token or "")
    own = session is None
    if separate_connections and own:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    http = session or aiohttp.ClientSession()
    try:
        params = {
            "CallSid": report.call_sid, "AccountSid": account, "From": from_number, "To": to_number,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
        }
        headers = {"X-Twilio-Signature": validator.compute_signature(public + "/twilio/voice", params)} if auth_token else {}
        try:
            r = await http.post(url + "/twilio/voice", data=params, headers=headers)
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:  # refused, no route, no such host; not a URL
            report.rejected, report.unreachable = True, True
            report.error = f"nothing answers at {url} ({type(exc).__name__}: {exc})"
            return report
        async with r:
            if r.status != 200:
                report.rejected, report.error = True, f"webhook answered {r.status}"
                return report
            twiml = await r.text()
        stream_url, custom = _parse_twiml(twiml)
        if stream_url is None:
            report.rejected, report.error = True, "no <Connect><Stream> in TwiML"
            return report
        to = (stream_to or url).rstrip("/")
        ws_url = ("wss" if to.startswith("https") else "ws") + "://" + urlsplit(to).netloc + urlsplit(stream_url).path
        headers = {"X-Twilio-Signature": validator.compute_signature(stream_url, {})} if auth_token else {}
        async with http.ws_connect(ws_url, headers=headers, max_msg_size=0) as ws:
            await _run_stream(ws, report, account, custom, [u if isinstance(u, Dtmf) else load_ulaw(u) for u in utterances], gap_s, barge_in_after_ms, max_wait_s, quiet_s, dtmf or {})
        action = _action_url(twiml)
        if (follow_action or action_to) and action:
            status = "in-progress" if report.hung_up_by_bot else "completed"  # the bot ended the stream, or the caller hung up
            form = {"CallSid": report.call_sid, "AccountSid": account, "CallStatus": status, "ApiVersion": "2010-04-01"}
            headers = {"X-Twilio-Signature": validator.compute_signature(action, form)} if auth_token else {}
            target = (action_to or url).rstrip("/") + urlsplit(action).path
            async with http.post(target, data=form, headers=headers) as r:
                report.action_twiml = await r.text() if r.status == 200 else f"HTTP {r.status}"
    except aiohttp.WSServerHandshakeError as exc:
        report.rejected, report.error = True, f"websocket refused: {exc.status}"
    except (aiohttp.ClientError, OSError, ET.ParseError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        if own:
            await http.close()
    return report


def _action_url(text: str) -> str:
    connect = ET.fromstring(text).find("./Connect")
    return connect.get("action", "") if connect is not None else ""


def _parse_twiml(text: str) -> tuple[str | None, dict[str, str]]:
    root = ET.fromstring(text)
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None, {}
    return stream.get("url"), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


@dataclass
class _StreamState:
    """What the reader task tells the caller's script."""

    last_audio: float | None = None  # arrival of the bot's latest audio (monotonic s)
    first_audio: float | None = None  # the current reply's first audio
    closed: bool = False  # the bot closed the stream
    stale_window: bool = False  # a clear arrived; audio until the caller's turn ends is stale


async def _run_stream(ws, report: CallReport, account: str, custom: dict, utterances: list[bytes | Dtmf], gap_s, barge_in_after_ms, max_wait_s, quiet_s, dtmf) -> None:
    sid = report.stream_sid
    playback = Playback()
    t0 = asyncio.get_running_loop().time()

    def now() -> float:
        return asyncio.get_running_loop().time() - t0

    seq = 0
    state = _StreamState()

    async def send(obj: dict) -> None:
        nonlocal seq
        seq += 1
        obj["sequenceNumber"] = str(seq)
        await ws.send_str(json.dumps(obj))

    async def reader() -> None:
        last = None
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            ev = m.get("event")
            t = now()
            if ev == "media":
                audio = base64.b64decode(m["media"]["payload"])
                playback.queue.append(audio)
                if last is not None:
                    report.bot_media_gaps_ms.append((t - last) * 1000)
                report.bot_media_s.append(t)
                report.bot_media_frames.append(max(1, -(-len(audio) // frames.FRAME_BYTES)))
                last = t
                if state.first_audio is None:
                    state.first_audio = t
                state.last_audio = t
                if state.stale_window:
                    report.stale_audio_bytes += len(audio)
            elif ev == "mark":
                name = m["mark"]["name"]
                report.marks_sent_by_bot.append(name)
                playback.queue.append(name)
            elif ev == "clear":
                report.clears += 1
                report.events.append((t, "clear", ""))
                if report.turns:
                    report.turns[-1].clears_ms.append((t - report.turns[-1].speech_start_s) * 1000)
                state.stale_window = True
                for name in playback.clear():
                    await echo(name)
        state.closed = True

    async def echo(name: str) -> None:
        report.marks_echoed.append(name)
        report.events.append((now(), "mark", name))
        if not ws.closed:
            await send({"event": "mark", "streamSid": sid, "mark": {"name": name}})

    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await send({
        "event": "start", "streamSid": sid,
        "start": {
            "accountSid": account, "callSid": report.call_sid, "streamSid": sid, "tracks": ["inbound"],
            "customParameters": custom, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    })
    read_task = asyncio.create_task(reader())
    chunk = 0
    next_t = asyncio.get_running_loop().time()

    async def frame(payload: bytes, b64: str | None = None) -> bool:
        """Send one 20 ms frame (``b64``: its payload already base64-encoded, if at
        hand) on the real-time clock and play 20 ms."""
        nonlocal chunk, next_t, seq
        if state.closed:
            return False
        if b64 is None:
            b64 = SILENCE_B64 if payload is SILENCE else base64.b64encode(payload).decode()
        next_t += FRAME_S
        delay = next_t - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            report.send_late_ms.append(-delay * 1000)
        chunk += 1
        seq += 1
        try:
            await ws.send_str(MEDIA_JSON % (seq, sid, chunk, chunk * 20, b64))
        except (ConnectionError, RuntimeError):
            state.closed = True
            return False
        for name in playback.tick():
            await echo(name)
        return True

    async def wait_reply(since: float) -> None:
        """Silence until the bot has spoken and gone quiet (bounded by max_wait_s)."""
        deadline = now() + max_wait_s
        while now() < deadline:
            if not await frame(SILENCE):
                return
            la = state.last_audio
            if barge_in_after_ms is not None and state.first_audio is not None and state.first_audio >= since:
                if now() - state.first_audio >= barge_in_after_ms / 1000:
                    return
            if la is not None and la >= since and not playback.busy and now() - la >= quiet_s:
                return

    try:
        state.first_audio = None
        await wait_reply(0.0)
        if state.first_audio is not None:
            report.greeting_ms = state.first_audio * 1000
        for i, audio in enumerate(utterances):
            if state.closed:
                break
            turn = TurnReport(i + 1, now(), 0.0)
            report.turns.append(turn)
            state.stale_window = False
            if isinstance(audio, Dtmf):
                turn.speech_end_s, state.first_audio = now(), None
                for d in audio.digits:
                    await send({"event": "dtmf", "streamSid": sid, "dtmf": {"track": "inbound_track", "digit": d}})
                await wait_reply(turn.speech_end_s)
                if state.first_audio is not None:
                    turn.first_audio_ms = (state.first_audio - turn.speech_end_s) * 1000
                continue
            utterance, payloads, end = _prepared(audio)
            for k, fr in enumerate(utterance):
                if k == end:
                    turn.speech_end_s = now()
                    state.stale_window = False
                    state.first_audio = None
                if not await frame(fr, payloads[k]):
                    break
            if not turn.speech_end_s:
                turn.speech_end_s = now()
                state.first_audio = None
            state.stale_window = False
            report.events.append((turn.speech_end_s, "speech_end", str(i + 1)))
            for d in dtmf.get(i, ""):
                await send({"event": "dtmf", "streamSid": sid, "dtmf": {"track": "inbound_track", "digit": d}})
            await wait_reply(turn.speech_end_s)
            if state.first_audio is not None:
                turn.first_audio_ms = (state.first_audio - turn.speech_end_s) * 1000
            if barge_in_after_ms is None:
                for _ in range(int(gap_s / FRAME_S)):
                    if not await frame(SILENCE):
                        break
        report.hung_up_by_bot = state.closed
        if not state.closed:
            await send({"event": "stop", "streamSid": sid, "stop": {"accountSid": account, "callSid": report.call_sid}})
            await ws.close()
    finally:
        report.heard = bytes(playback.heard)
        read_task.cancel()
        try:
            await read_task
        except (asyncio.CancelledError, Exception):
            pass


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


