"""A fake Deepgram live (streaming) server: ``GET /v1/listen`` upgraded to a websocket.

It speaks the real wire format (see /work/shared/docs/wire-facts.md), so the real SDK
client can be pointed at it. It hears speech by energy in the mu-law it receives and
answers with scripted transcripts, timed on the audio clock (bytes received / 8000),
so tests may send faster than real time::

    state = LiveBehaviour(transcripts=["What time do you open tomorrow morning?"])
    server = await aiohttp_server(deepgram_live_app(state))
    settings = Settings(deepgram_base_url=str(server.make_url("")), ...)

Per connection, in audio time:

- speech begins (a 20 ms window louder than ``speech_rms``): ``SpeechStarted``
  (if ``vad_events=true``), then an interim ``Results`` every ``interim_every_ms`` of
  audio while it lasts (if ``interim_results=true``), showing more words each time;
- ``endpointing`` ms of silence after speech: a final ``Results`` (``is_final`` and
  ``speech_final`` true) with the next scripted transcript;
- ``utterance_end_ms`` after the last word: ``UtteranceEnd``;
- ``Finalize``: a final for any speech not yet finalised, ``from_finalize: true``;
- ``CloseStream``: the same flush, then ``Metadata``, then a normal close (1000).

Results of one socket tile its timeline: each final covers ``[start, start+duration)``
from the end of the previous final. The transcript index lives in ``LiveBehaviour``
and advances only when a final is sent, so a reconnected socket carries on the turn.

Modes (``mode``, or per connection from ``script``, consumed first):

- ``"ok"``; ``"garbage"``: as ok, but each real message is preceded by junk (non-JSON
  text, an unknown ``type``, a ``Results`` without fields, a JSON list, a binary frame);
- a status such as ``"401"`` or ``"500"``: the handshake is refused with it;
- ``"hang"``: the handshake never completes (until the client goes away);
- ``"drop"``: as ok, then the socket is cut after ``drop_after_messages`` messages sent,
  or once ``drop_at_audio_s`` of audio has arrived (``drop_how``: ``"abort"`` = TCP
  reset, no close frame; or ``"close"`` = a close frame with ``drop_close_code``).

``idle_close_s``: like Deepgram, close with 1011 when neither audio nor KeepAlive
arrived for that long (None = never). Everything seen is in ``connections``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from media import mulaw

__all__ = ["LiveBehaviour", "LiveSeen", "deepgram_live_app", "live_routes"]

RATE = 8000
WINDOW = 160  # 20 ms of mu-law
MODEL_UUID = "1dbdfb4d-85b2-4659-9d3f-2a9b8c0f3e21"
_GARBAGE: list[str | bytes] = [
    "this is not json {",
    json.dumps({"type": "Surprise", "detail": "a type this client does not know"}),
    json.dumps({"type": "Results"}),
    json.dumps([1, 2, 3]),
    b"\x00\x01binary?",
]


@dataclass
class LiveSeen:
    """One websocket connection (or refused attempt) the fake received."""

    query: dict[str, str]
    authorization: str
    mode: str
    audio_bytes: int = 0
    audio_frames: int = 0
    controls: list[str] = field(default_factory=list)  # KeepAlive / Finalize / CloseStream / "?"
    control_times: list[float] = field(default_factory=list)  # monotonic
    sent: list[str] = field(default_factory=list)  # types the fake sent
    closed: str = ""  # "client", "CloseStream", "drop", "idle", "refused", "hang"

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / RATE


@dataclass
class LiveBehaviour:
    """Script for the fake live server, and its record of what it saw."""

    transcripts: list[str] = field(default_factory=lambda: ["What time do you open tomorrow morning?"])
    mode: str = "ok"
    script: list[str] = field(default_factory=list)  # per-connection modes, consumed first
    key: str | None = None  # expected API key; None = any "Token ..." header
    speech_rms: float = 300.0  # PCM16 RMS of a 20 ms window that counts as speech
    interim_every_ms: int = 250
    drop_after_messages: int | None = None
    drop_at_audio_s: float | None = None
    drop_how: str = "abort"
    drop_close_code: int = 1011  # with drop_how="close"; Deepgram uses 1008 for undecodable audio
    idle_close_s: float | None = None
    hang_s: float = 30.0
    next_index: int = 0  # the transcript the next final will carry
    hear: Any = None  # callable(mu-law since the last final) -> transcript or None (then the scripted one)
    connections: list[LiveSeen] = field(default_factory=list)

    @property
    def last(self) -> LiveSeen:
        return self.connections[-1]

    def controls(self, kind: str) -> int:
        return sum(c.controls.count(kind) for c in self.connections)

    def _take_transcript(self, advance: bool) -> str:
        if not self.transcripts:
            return ""
        text = self.transcripts[min(self.next_index, len(self.transcripts) - 1)]
        if advance:
            self.next_index += 1
        return text


# ---------------------------------------------------------------- message shapes


def _words(text: str, start: float, end: float) -> list[dict]:
    tokens = text.split()
    step = (end - start) / max(1, len(tokens))
    return [
        {
            "word": "".join(ch for ch in tok if ch.isalnum() or ch == "'").lower(),
            "start": round(start + i * step, 3),
            "end": round(start + (i + 1) * step, 3),
            "confidence": 0.97,
            "punctuated_word": tok,
        }
        for i, tok in enumerate(tokens)
    ]


def results(
    text: str,
    *,
    start: float,
    duration: float,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool = False,
    words_span: tuple[float, float] | None = None,
) -> dict:
    """A ``Results`` message as Deepgram sends it."""
    ws, we = words_span or (start, start + duration)
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(duration, 3),
        "start": round(start, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {
            "alternatives": [
                {"transcript": text, "confidence": 0.97 if text else 0.0, "words": _words(text, ws, we)}
            ]
        },
        "metadata": {
            "request_id": str(uuid.uuid4()),
            "model_info": {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"},
            "model_uuid": MODEL_UUID,
        },
        "from_finalize": from_finalize,
    }


def metadata(duration: float) -> dict:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": str(uuid.uuid4()),
        "sha256": "0" * 64,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "duration": round(duration, 3),
        "channels": 1,
        "models": [MODEL_UUID],
        "model_info": {MODEL_UUID: {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}},
    }


# ---------------------------------------------------------------- one socket's recogniser (no I/O)


class _Stream:
    """Hears speech in mu-law by energy and says what Deepgram would, on the audio clock."""

    def __init__(self, state: LiveBehaviour, query: dict[str, str]) -> None:
        self.state = state
        self.interims = query.get("interim_results") == "true"
        self.vad_events = query.get("vad_events") == "true"
        ep = query.get("endpointing", "10")
        self.endpointing = None if ep == "false" else max(10, int(ep)) / 1000
        ue = query.get("utterance_end_ms")
        self.utterance_end = int(ue) / 1000 if ue else None
        # mu-law 8 kHz (what phonebot sends), or linear16 at ``sample_rate`` (Pipecat's default)
        self.linear16 = query.get("encoding") == "linear16"
        self.rate = int(query.get("sample_rate", RATE)) if self.linear16 else RATE
        self.window = self.rate // 50 * 2 if self.linear16 else WINDOW  # bytes in 20 ms
        self.received = 0  # bytes
        self._carry = b""
        self.seg_start = 0.0  # start of the audio not yet finalised
        self.heard = False  # speech since seg_start
        self.speech_start = 0.0
        self.last_voice = 0.0
        self.last_interim = 0.0
        self.awaiting_ue = False
        self.last_word_end = 0.0
        self.seg_audio = bytearray()  # mu-law since the last final, for ``state.hear``

    @property
    def now(self) -> float:
        """Seconds of audio received (20 ms windows)."""
        return self.received / (2 * self.rate if self.linear16 else RATE)

    def audio(self, data: bytes) -> list[dict]:
        out: list[dict] = []
        buf = self._carry + data
        w = self.window
        n = len(buf) // w * w
        self._carry = buf[n:]
        for i in range(0, n, w):
            raw = buf[i : i + w] if self.linear16 else mulaw.decode(buf[i : i + w])
            if self.state.hear is not None:
                self.seg_audio += mulaw.encode(raw) if self.linear16 else buf[i : i + w]
                if not self.heard and len(self.seg_audio) > RATE:  # silence before speech: keep half a second
                    del self.seg_audio[: -RATE // 2]
            pcm = np.frombuffer(raw, dtype="<i2").astype(np.float64)
            self.received += w
            self._window(float(np.sqrt(np.mean(pcm * pcm))) > self.state.speech_rms, out)
        return out

    def _window(self, voiced: bool, out: list[dict]) -> None:
        t = self.now
        if voiced:
            if not self.heard:
                self.heard = True
                self.speech_start = t - 0.02
                self.last_interim = self.speech_start
                if self.vad_events:
                    out.append({"type": "SpeechStarted", "channel": [0], "timestamp": round(self.speech_start, 3)})
            self.last_voice = t
            self.awaiting_ue = False
            if self.interims and t - self.last_interim >= self.state.interim_every_ms / 1000:
                self.last_interim = t
                out.append(self._interim(t))
            return
        if self.heard and self.endpointing is not None and t - self.last_voice >= self.endpointing:
            out.append(self._final(t, speech_final=True))
        if self.awaiting_ue and self.utterance_end is not None and t - self.last_word_end >= self.utterance_end:
            self.awaiting_ue = False
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)})

    def _heard(self) -> str | None:
        return self.state.hear(bytes(self.seg_audio)) if self.state.hear is not None else None

    def _interim(self, t: float) -> dict:
        words = (self._heard() or self.state._take_transcript(advance=False)).split()
        n = min(len(words), 1 + int((t - self.speech_start) / 0.3))
        return results(
            " ".join(words[:n]), start=self.seg_start, duration=t - self.seg_start,
            is_final=False, speech_final=False, words_span=(self.speech_start, t),
        )

    def _final(self, t: float, *, speech_final: bool, from_finalize: bool = False) -> dict:
        text = (self._heard() or self.state._take_transcript(advance=True)) if self.heard else ""
        self.seg_audio.clear()
        msg = results(
            text, start=self.seg_start, duration=t - self.seg_start, is_final=True,
            speech_final=speech_final, from_finalize=from_finalize,
            words_span=(self.speech_start, self.last_voice) if self.heard else None,
        )
        if self.heard:
            self.awaiting_ue = self.utterance_end is not None
            self.last_word_end = self.last_voice
        self.heard = False
        self.seg_start = t
        return msg

    def finalize(self) -> list[dict]:
        return [self._final(self.now, speech_final=False, from_finalize=True)]

    def close_stream(self) -> list[dict]:
        out = [self._final(self.now, speech_final=False)] if self.heard else []
        return out + [metadata(self.now)]


# ---------------------------------------------------------------- the route


class _Dropped(Exception):
    pass


def _gone(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


def live_routes(state: LiveBehaviour) -> list[web.RouteDef]:
    async def listen(request: web.Request) -> web.StreamResponse:
        mode = state.script.pop(0) if state.script else state.mode
        auth = request.headers.get("Authorization", "")
        seen = LiveSeen(dict(request.query), auth, mode)
        state.connections.append(seen)
        key_ok = auth.startswith("Token ") and len(auth) > 6 and (state.key is None or auth == f"Token {state.key}")
        if not key_ok or mode.isdigit():
            status = 401 if not key_ok else int(mode)
            seen.closed = "refused"
            code = {401: "INVALID_AUTH", 429: "TOO_MANY_REQUESTS"}.get(status, "ERROR")
            body = {"err_code": code, "err_msg": "fake refusal", "request_id": str(uuid.uuid4())}
            return web.json_response(body, status=status, headers={"dg-error": body["err_msg"]})
        if mode == "hang":
            seen.closed = "hang"
            end = asyncio.get_running_loop().time() + state.hang_s
            while asyncio.get_running_loop().time() < end and not _gone(request):
                await asyncio.sleep(0.01)
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never reaches the client

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        stream = _Stream(state, seen.query)
        sent = 0

        async def emit(messages: list[dict]) -> None:
            nonlocal sent
            for m in messages:
                if mode == "garbage":
                    junk = _GARBAGE[sent % len(_GARBAGE)]
                    await (ws.send_bytes(junk) if isinstance(junk, bytes) else ws.send_str(junk))
                await ws.send_str(json.dumps(m))
                seen.sent.append(m["type"])
                sent += 1
                if mode == "drop" and state.drop_after_messages is not None and sent >= state.drop_after_messages:
                    raise _Dropped

        try:
            while True:
                timeout = state.idle_close_s
                try:
                    msg = await ws.receive(timeout=timeout)
                except TimeoutError:
                    seen.closed = "idle"
                    await ws.close(code=1011, message=b"NET-0001")
                    break
                if msg.type == WSMsgType.BINARY:
                    seen.audio_bytes += len(msg.data)
                    seen.audio_frames += 1
                    await emit(stream.audio(msg.data))
                    if mode == "drop" and state.drop_at_audio_s is not None and stream.now >= state.drop_at_audio_s:
                        raise _Dropped
                elif msg.type == WSMsgType.TEXT:
                    try:
                        kind = json.loads(msg.data).get("type", "?")
                    except (ValueError, AttributeError):
                        kind = "?"
                    seen.controls.append(kind)
                    seen.control_times.append(asyncio.get_running_loop().time())
                    if kind == "Finalize":
                        await emit(stream.finalize())
                    elif kind == "CloseStream":
                        await emit(stream.close_stream())
                        seen.closed = "CloseStream"
                        await ws.close(code=1000)
                        break
                    elif kind != "KeepAlive":
                        await ws.send_str(json.dumps({
                            "type": "Error", "variant": "SchemaError",
                            "description": "could not parse the client message", "message": str(msg.data)[:100],
                        }))
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    seen.closed = seen.closed or "client"
                    break
        except _Dropped:
            seen.closed = "drop"
            if state.drop_how == "close":
                reason = b"DATA-0000" if state.drop_close_code == 1008 else b"NET-0000"
                await ws.close(code=state.drop_close_code, message=reason)
            elif request.transport is not None:
                request.transport.abort()
        except ConnectionResetError:
            seen.closed = seen.closed or "client"
        return ws

    return [web.get("/v1/listen", listen)]


def deepgram_live_app(state: LiveBehaviour) -> web.Application:
    app = web.Application()
    app.add_routes(live_routes(state))
    return app
