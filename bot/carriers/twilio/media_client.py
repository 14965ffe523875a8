"""Twilio's side of a Media Stream, the client role beside media_stream.py's protocol:
what Twilio sends the bot, and the bot's messages read and checked as the bot checks
Twilio's. The simulator speaks through it."""

from __future__ import annotations

import binascii
import json

from bot.carriers.twilio.media_stream import (
    DIGITS,
    BotEvent,
    Clear,
    Mark,
    Media,
    ProtocolError,
    _Bad,
    _obj,
    _str,
)

# One inbound media message as Twilio writes it (the bot's fast path in media_stream.py reads this shape).
_CLIENT_MEDIA = (
    '{"event":"media","sequenceNumber":"%d","streamSid":"%s",'
    '"media":{"track":"inbound","chunk":"%d","timestamp":"%d","payload":"%s"}}'
)


class MediaStreamClient:
    """Twilio's side of one stream: what it sends the bot, and the bot's messages read.

    Sequence numbers, chunks and timestamps are kept here (a message of any kind takes the
    next sequence number; each media message is one 20 ms chunk). The bot's messages are
    checked as the bot checks Twilio's: wrong stream, bad base64, unknown events are
    counted in ``stats`` and dropped."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str = "", max_message_bytes: int = 1024 * 1024) -> None:
        self.stream_sid, self.call_sid, self.account_sid = stream_sid, call_sid, account_sid
        self.max_message_bytes = max_message_bytes
        self.stats: dict[str, int] = {}
        self.seq = self.chunk = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _json(self, obj: dict) -> str:
        return json.dumps(obj, separators=(",", ":"))

    # --- Twilio -> the bot ------------------------------------------------------------
    def connected(self) -> str:
        return self._json({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: dict[str, str] | None = None, tracks: tuple[str, ...] = ("inbound",)) -> str:
        return self._json({
            "event": "start", "sequenceNumber": str(self._next()), "streamSid": self.stream_sid,
            "start": {
                "accountSid": self.account_sid, "callSid": self.call_sid, "streamSid": self.stream_sid, "tracks": list(tracks),
                "customParameters": dict(custom_parameters or {}),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        })

    def media(self, ulaw: bytes) -> str:
        return self.media_b64(binascii.b2a_base64(ulaw, newline=False).decode("ascii"))

    def media_b64(self, payload_b64: str) -> str:
        """A media message whose payload is already base64 (a caller's prepared frames)."""
        self.chunk += 1
        return _CLIENT_MEDIA % (self._next(), self.stream_sid, self.chunk, self.chunk * 20, payload_b64)

    def dtmf(self, digit: str) -> str:
        if digit not in DIGITS:
            raise ProtocolError(f"not a DTMF digit: {digit!r}")
        return self._json({"event": "dtmf", "sequenceNumber": str(self._next()), "streamSid": self.stream_sid, "dtmf": {"track": "inbound_track", "digit": digit}})

    def mark(self, name: str) -> str:
        """Echo a mark the bot sent, once everything before it was played."""
        return self._json({"event": "mark", "sequenceNumber": str(self._next()), "streamSid": self.stream_sid, "mark": {"name": name}})

    def stop(self) -> str:
        return self._json({
            "event": "stop", "sequenceNumber": str(self._next()), "streamSid": self.stream_sid,
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
        })

    # --- the bot -> Twilio ------------------------------------------------------------
    def receive(self, text: str) -> BotEvent | None:
        try:
            return self._receive(text)
        except _Bad as bad:
            self.stats[bad.reason] = self.stats.get(bad.reason, 0) + 1
            return None

    def _receive(self, text: str) -> BotEvent:
        if not isinstance(text, str):
            raise _Bad("binary")
        if len(text) > self.max_message_bytes:
            raise _Bad("oversized")
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            raise _Bad("not_json") from None
        if not isinstance(msg, dict):
            raise _Bad("not_object")
        if msg.get("streamSid") != self.stream_sid:
            raise _Bad("wrong_stream")
        event = msg.get("event")
        if event == "media":
            payload = _str(_obj(msg, "media"), "payload", limit=self.max_message_bytes)
            try:
                return Media(binascii.a2b_base64(payload, strict_mode=True))
            except (binascii.Error, ValueError):
                raise _Bad("bad_base64") from None
        if event == "mark":
            return Mark(_str(_obj(msg, "mark"), "name", limit=128))
        if event == "clear":
            return Clear()
        raise _Bad("unknown_event")
