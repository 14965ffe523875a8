"""Twilio Media Streams (bidirectional, <Connect><Stream>) as sans-I/O objects, both roles.

``MediaStreamProtocol`` is the bot's side: text in (``receive``) -> typed events out;
our intents in (``send_media``, ``send_mark``, ``send_clear``) -> text out.
``MediaStreamClient`` is Twilio's side (the simulator, benchmarks): it writes
``connected``, ``start``, numbered ``media``/``dtmf``/``mark``/``stop`` messages and reads
the bot's ``media``, ``mark`` and ``clear``. No sockets, no asyncio. Bad input never
raises: it is counted in ``stats`` by reason and dropped; the payload is never stored,
logged or put in an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

SID_CALL = re.compile(r"CA[0-9a-f]{32}")  # always with fullmatch: "$" would accept a trailing newline
SID_STREAM = re.compile(r"MZ[0-9a-f]{32}")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
SIP_URI = re.compile(r"sips?:[A-Za-z0-9!#$%&'*+\-./:;=?@_~\[\]]{1,200}")
DIGITS = set("0123456789*#ABCD")
# Twilio sends 20 ms of 8 kHz mu-law per message: 160 bytes. A bigger payload is a
# violation (counted, dropped), so every accepted message is at most 20 ms of audio
# and frame-counting timers and turn caps are duration bounds.
MAX_PAYLOAD = 160
_B64_MAX = (MAX_PAYLOAD + 2) // 3 * 4  # base64 characters of MAX_PAYLOAD bytes

REASONS = (
    "binary", "oversized", "not_json", "not_object", "unknown_event", "missing_field",
    "bad_type", "bad_base64", "before_start", "wrong_stream", "after_stop", "bad_digit",
    "bad_track", "too_large_payload", "duplicate_start", "gaps",
)

# The fast path: a media message as Twilio (compact) or Python's json.dumps writes it, in
# Twilio's key order (streamSid before or after "media"). It only recognises: every check
# the general path makes is made on what it matched (stream, sizes, base64, sequence), and
# anything else (other spacing or key orders, escapes, extra keys) takes the general path,
# so the outcome is the same (tests/test_media_stream.py compares the two).
_FAST_HEAD = re.compile(
    r'\{"event": ?"media", ?"sequenceNumber": ?"([0-9]{1,12})", ?(?:"streamSid": ?"([A-Za-z0-9]{0,64})", ?)?'
    r'"media": ?\{"track": ?"inbound(?:_track)?", ?"chunk": ?"([0-9]{1,12})", ?"timestamp": ?"([0-9]{1,12})", ?"payload": ?"'
)
_FAST_TAIL = re.compile(r'"\}(?:, ?"streamSid": ?"([A-Za-z0-9]{0,64})")?\}')


class State(Enum):
    WAITING = "waiting"
    STARTED = "started"
    STOPPED = "stopped"


class ProtocolError(RuntimeError):
    """Our own misuse (sending before start): a bug, so it raises."""


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict = field(default_factory=dict)
    media_format: dict = field(default_factory=dict)
    tracks: tuple = ()


class Media(NamedTuple):  # 50 a second per call: a tuple is built faster than a frozen dataclass
    payload: bytes
    timestamp_ms: int | None = None
    chunk: int | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Stop:
    call_sid: str


@dataclass(frozen=True)
class Clear:
    """The bot dropped the audio it had sent (barge-in); only the client receives it."""


Event = Connected | Start | Media | Dtmf | Mark | Stop
BotEvent = Media | Mark | Clear  # what the client reads from the bot


class _Bad(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _int(v) -> int | None:
    if v is None:
        return None
    if isinstance(v, str) and v.isdigit() and len(v) <= 12:
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise _Bad("bad_type")


def _json_object(text: str) -> dict:
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise _Bad("not_json") from None
    if not isinstance(msg, dict):
        raise _Bad("not_object")
    return msg


def _str(obj: dict, key: str, *, required: bool = True, limit: int = 256) -> str:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad("missing_field")
        return ""
    if not isinstance(v, str) or len(v) > limit:
        raise _Bad("bad_type")
    return v


def _obj(obj: dict, key: str) -> dict:
    v = obj.get(key)
    if v is None:
        raise _Bad("missing_field")
    if not isinstance(v, dict):
        raise _Bad("bad_type")
    return v


class MediaStreamProtocol:
    def __init__(self, max_message_bytes: int = 64 * 1024) -> None:
        self.max_message_bytes = max_message_bytes
        self.state = State.WAITING
        self.stream_sid = ""
        self.call_sid = ""
        self.stats: dict[str, int] = {}
        self._last_seq: int | None = None
        self._media_head = self._mark_head = self._clear = ""

    # --- Twilio -> us ----------------------------------------------------------------
    def receive(self, text: str) -> Event | None:
        try:
            return self._receive(text)
        except _Bad as bad:
            self._count(bad.reason)
            return None

    def receive_binary(self) -> None:
        """A binary frame: Twilio only sends text; count and drop it."""
        self._count("binary")

    def _count(self, reason: str) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1

    def _receive(self, text: str) -> Event | None:
        if not isinstance(text, str):
            raise _Bad("binary")
        if len(text) > self.max_message_bytes:
            raise _Bad("oversized")
        if self.state is State.STARTED:
            ev = self._fast_media(text)
            if ev is not None:
                return ev
        msg = _json_object(text)
        if self.state is State.STOPPED:
            raise _Bad("after_stop")
        return self._event(msg)

    def _event(self, msg: dict) -> Event:
        """One parsed message, by its ``event``."""
        event = msg.get("event")
        if event == "media":
            return self._media(msg)
        if event == "mark":
            return self._mark(msg)
        if event == "dtmf":
            return self._dtmf(msg)
        if event == "start":
            return self._start(msg)
        if event == "connected":
            return Connected(_str(msg, "protocol", required=False), _str(msg, "version", required=False))
        if event == "stop":
            return self._stop(msg)
        raise _Bad("unknown_event")

    def _stop(self, msg: dict) -> Stop:
        self._check_stream(msg)
        raw = msg.get("stop")
        stop: dict = raw if isinstance(raw, dict) else {}
        self.state = State.STOPPED
        call = stop.get("callSid")
        if not isinstance(call, str):
            call = self.call_sid
        return Stop(call[:64])

    def _check_stream(self, msg: dict) -> None:
        if self.state is not State.STARTED:
            raise _Bad("before_start")
        sid = msg.get("streamSid")
        if sid is not None and sid != self.stream_sid:
            raise _Bad("wrong_stream")

    def _start(self, msg: dict) -> Start:
        if self.state is not State.WAITING:
            raise _Bad("duplicate_start")
        start = _obj(msg, "start")
        stream_sid = _str(start, "streamSid", required=False) or _str(msg, "streamSid")
        call_sid = _str(start, "callSid")
        if not SID_STREAM.fullmatch(stream_sid) or not SID_CALL.fullmatch(call_sid):
            raise _Bad("bad_type")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise _Bad("bad_type")
        params = {str(k)[:64]: str(v)[:256] for k, v in list(params.items())[:32]}
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict):
            raise _Bad("bad_type")
        if fmt and (fmt.get("encoding") not in (None, "audio/x-mulaw") or fmt.get("sampleRate") not in (None, 8000)):
            raise _Bad("bad_type")
        tracks = start.get("tracks") or []
        if not isinstance(tracks, list):
            raise _Bad("bad_type")
        self.state = State.STARTED
        self.stream_sid, self.call_sid = stream_sid, call_sid
        # outbound envelopes, rendered once (a stream SID is MZ + hex: nothing to escape)
        sid = '"streamSid":"' + stream_sid + '"'
        self._media_head = '{"event":"media",' + sid + ',"media":{"payload":"'
        self._mark_head = '{"event":"mark",' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear",' + sid + "}"
        self._sequence(msg)
        return Start(
            stream_sid=stream_sid, call_sid=call_sid, account_sid=_str(start, "accountSid", required=False, limit=64),
            custom_parameters=params, media_format=dict(fmt), tracks=tuple(str(t)[:16] for t in tracks[:4]),
        )

    def _media(self, msg: dict) -> Media:
        self._check_stream(msg)
        media = _obj(msg, "media")
        track = media.get("track")
        if track is not None and track not in ("inbound", "inbound_track"):
            raise _Bad("bad_track")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise _Bad("missing_field" if payload is None else "bad_type")
        if len(payload) > (MAX_PAYLOAD + 2) // 3 * 4:
            raise _Bad("too_large_payload")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("bad_base64") from None
        if len(audio) > MAX_PAYLOAD:
            raise _Bad("too_large_payload")
        seq = self._sequence(msg)
        chunk = _int(media.get("chunk"))
        ts = _int(media.get("timestamp"))
        return Media(audio, ts, chunk, seq)

    def _fast_media(self, text: str) -> Media | None:
        """A media message of the fast shape, with the general path's checks; None for any
        other text, or if a check fails (the general path then says what, and counts it).
        The payload is cut at the first quote: a JSON escape in it leaves a backslash,
        which strict base64 refuses."""
        head = _FAST_HEAD.match(text)
        if head is None:
            return None
        start = head.end()
        end = text.find('"', start)
        if end < 0 or end - start > _B64_MAX:
            return None
        tail = _FAST_TAIL.fullmatch(text, end)
        if tail is None:
            return None
        seq, sid_before, chunk, ts = head.groups()
        sid_after = tail.group(1)
        if sid_before is not None and sid_after is not None:
            return None  # a duplicated key
        sid = sid_before if sid_after is None else sid_after
        if sid is not None and sid != self.stream_sid:
            return None
        try:  # what base64.b64decode(validate=True) does
            audio = binascii.a2b_base64(text[start:end], strict_mode=True)
        except (binascii.Error, ValueError):
            return None
        if len(audio) > MAX_PAYLOAD:
            return None
        return Media(audio, int(ts), int(chunk), self._seen(int(seq)))

    def _sequence(self, msg: dict) -> int | None:
        """Twilio numbers every message of a stream; a jump means lost messages."""
        seq = _int(msg.get("sequenceNumber"))
        return seq if seq is None else self._seen(seq)

    def _seen(self, seq: int) -> int:
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.stats["gaps"] = self.stats.get("gaps", 0) + min(seq - self._last_seq - 1, 1_000_000)
        self._last_seq = seq
        return seq

    def _mark(self, msg: dict) -> Mark:
        self._check_stream(msg)
        self._sequence(msg)
        return Mark(_str(_obj(msg, "mark"), "name", limit=128))

    def _dtmf(self, msg: dict) -> Dtmf:
        self._check_stream(msg)
        self._sequence(msg)
        digit = _str(_obj(msg, "dtmf"), "digit", limit=1)
        if digit not in DIGITS:
            raise _Bad("bad_digit")
        return Dtmf(digit)

    # --- us -> Twilio -------------------------------------------------------------------
    def _require_started(self) -> None:
        if self.state is not State.STARTED:
            raise ProtocolError(f"cannot send in state {self.state.value}")

    # The same text json.dumps(..., separators=(",", ":")) makes, without building it per
    # message: 50 media messages a second per call (tests/test_media_stream.py checks both agree).
    def send_media(self, ulaw: bytes) -> str:
        self._require_started()
        return self._media_head + binascii.b2a_base64(ulaw, newline=False).decode("ascii") + '"}}'

    def send_mark(self, name: str) -> str:
        self._require_started()
        return self._mark_head + json.dumps(name) + "}}"

    def send_clear(self) -> str:
        self._require_started()
        return self._clear


def valid_caller(value: object) -> str:
    """A caller ID (webhook ``From``/``To``, ``start`` parameters) if it is an E.164
    number or a SIP URI, else "" (unknown): nothing else is kept, logged or stored."""
    if isinstance(value, str) and (E164.fullmatch(value) or SIP_URI.fullmatch(value)):
        return value
    return ""
