"""Which media streams may become calls.

Twilio's websocket signature covers only the fixed stream URL, so one captured
signature would open any number of streams with any CallSid. What binds a stream
to a real call is a token the voice webhook mints for that CallSid (HMAC-SHA256
over ``call_sid`` and an expiry) and Twilio hands back as ``customParameters.token``
in ``start``. A stream is admitted only if the token is genuine, unexpired, not used
before, for the CallSid the ``start`` names, and no other stream of that CallSid is
live. All of this is decided before any provider, database or REST work.

The HMAC key is derived from TWILIO_AUTH_TOKEN, so every instance behind a load
balancer accepts the others' tokens; with signature checks off it is random per
process. "Used" is remembered per process only: an instance that did not see the
first use would accept a token once more within its lifetime (seconds), still only
for the CallSid it was minted for, and never while that CallSid is live here.

Capacity (MAX_CALLS) counts streams from the websocket upgrade on, started or not:
``open_stream`` refuses past it, so idle unauthenticated sockets cannot fill it
unnoticed. The live-call registry is keyed by an internal stream id, never by a
CallSid a client sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bot.settings import Settings

TOKEN_PARAM = "token"

# reasons a stream is refused (metric labels and log fields)
NO_TOKEN = "no_token"
BAD_TOKEN = "bad_token"
EXPIRED = "expired_token"
REUSED = "reused_token"
DUPLICATE = "duplicate_call_sid"


class StreamTokens:
    """One-time, short-lived tokens bound to a CallSid: ``<expiry>.<mac>``."""

    def __init__(self, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._secret, self.ttl_s, self._clock = secret, ttl_s, clock
        self._used: dict[str, float] = {}  # mac -> expiry; pruned as tokens expire

    @classmethod
    def for_settings(cls, settings: Settings, **kw) -> StreamTokens:
        if settings.twilio_validate and settings.twilio_auth_token:
            secret = hmac.new(settings.twilio_auth_token.encode(), b"phonebot media stream token v1", hashlib.sha256).digest()
        else:
            secret = os.urandom(32)
        return cls(secret, settings.stream_token_ttl_s, **kw)

    def _mac(self, call_sid: str, expiry: int) -> str:
        digest = hmac.new(self._secret, f"{call_sid}\n{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def mint(self, call_sid: str) -> str:
        expiry = int(self._clock() + self.ttl_s) + 1
        return f"{expiry}.{self._mac(call_sid, expiry)}"

    def check(self, call_sid: str, token: str) -> str | None:
        """Redeem ``token`` for ``call_sid``: None if admitted (and now used), else why not."""
        if not token:
            return NO_TOKEN
        head, dot, mac = token.partition(".")
        if not dot or not head.isdigit() or len(head) > 12 or len(mac) > 64:
            return BAD_TOKEN
        expiry = int(head)
        if not hmac.compare_digest(mac, self._mac(call_sid, expiry)):
            return BAD_TOKEN  # forged, or minted for another CallSid
        now = self._clock()
        if expiry < now:
            return EXPIRED
        if expiry > now + self.ttl_s + 2:
            return BAD_TOKEN
        self._prune(now)
        if mac in self._used:
            return REUSED
        self._used[mac] = expiry
        return None

    def _prune(self, now: float) -> None:
        if len(self._used) > 64:
            for mac in [m for m, exp in self._used.items() if exp < now]:
                del self._used[mac]


@dataclass
class Ticket:
    """One open media stream, from the upgrade until it closes."""

    id: str
    call_sid: str = ""  # set once admitted


class StreamAdmission:
    def __init__(self, tokens: StreamTokens, max_streams: int) -> None:
        self.tokens, self.max_streams = tokens, max_streams
        self.open: dict[str, Ticket] = {}  # stream id -> ticket, started or not
        self._live_sids: dict[str, str] = {}  # call_sid -> stream id of its admitted stream
        self._ids = itertools.count(1)

    @classmethod
    def for_settings(cls, settings: Settings) -> StreamAdmission:
        return cls(StreamTokens.for_settings(settings), settings.max_calls)

    @property
    def full(self) -> bool:
        return len(self.open) >= self.max_streams

    def open_stream(self) -> Ticket | None:
        """At the websocket upgrade: a ticket, or None when at capacity."""
        if self.full:
            return None
        ticket = Ticket(id=f"s{next(self._ids)}")
        self.open[ticket.id] = ticket
        return ticket

    def admit(self, ticket: Ticket, call_sid: str, params: dict) -> str | None:
        """``start`` arrived: None if this stream is the call ``call_sid``, else the reason."""
        if call_sid in self._live_sids:
            return DUPLICATE
        why = self.tokens.check(call_sid, params.get(TOKEN_PARAM, ""))
        if why is None:
            ticket.call_sid = call_sid
            self._live_sids[call_sid] = ticket.id
        return why

    def close_stream(self, ticket: Ticket) -> None:
        self.open.pop(ticket.id, None)
        if ticket.call_sid and self._live_sids.get(ticket.call_sid) == ticket.id:
            del self._live_sids[ticket.call_sid]


ADMISSION = web.AppKey("stream_admission", StreamAdmission)


def mint_token(app: web.Application, call_sid: str) -> str:
    """A stream token for ``call_sid``, as the voice webhook would issue it (tests, tools)."""
    return app[ADMISSION].tokens.mint(call_sid)
