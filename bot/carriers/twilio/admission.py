"""Which media streams may become calls.

Twilio's websocket signature covers only the fixed stream URL, and its webhook
signatures carry no nonce or time, so a captured request can be replayed. What binds
a stream to a real call is a token the voice webhook mints for that CallSid and the
parameters it hands the stream (``caller``, ``called``, ``direction``): HMAC-SHA256
over all of them and an expiry, which Twilio hands back in ``start.customParameters``.
A stream is admitted only if the token is genuine for the CallSid *and* the
parameters it brings, unexpired, and the CallSid was never admitted before anywhere:
one row per CallSid in the store, insert-or-fail (bot/store/shared.py), so this holds
across processes and instances. A webhook replayed for an admitted CallSid gets no
stream at all. All of this is decided before any provider or REST work.

The HMAC key is derived from TWILIO_AUTH_TOKEN, so every instance behind a load
balancer accepts the others' tokens; with signature checks off it is random per
instance (the supervisor makes it and hands it to its workers: PHONEBOT_STREAM_SECRET).

Capacity (MAX_CALLS) is the instance's (bot/instance.py): the webhook reserves a slot
for its CallSid until the stream starts or the token expires; the stream takes it over.
A socket that never sends ``start`` holds no call slot (only one of this process's
``max_pending`` places for unstarted sockets: past them the oldest is closed), so sockets
opened with a captured signature cannot make a real call hear "busy" while ``/readyz``
says ready: both count the same slots. The live-call registry is keyed by an internal
stream id, never by a CallSid a client sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from bot.instance import InstanceState
from bot.logs import kv
from bot.settings import Settings
from bot.store.shared import STORE_DOWN, CallGate

log = logging.getLogger("bot.carriers.twilio.admission")

TOKEN_PARAM = "token"
BOUND = ("caller", "called", "direction")  # the stream parameters the token covers

# reasons a stream is refused (metric labels and log fields)
NO_TOKEN = "no_token"
BAD_TOKEN = "bad_token"
EXPIRED = "expired_token"
DUPLICATE = "duplicate_call_sid"  # the CallSid's stream was admitted before (a replay, a second socket)
CAPACITY = "capacity"


class StreamTokens:
    """Short-lived tokens bound to a CallSid and the stream's parameters: ``<expiry>.<mac>``."""

    def __init__(self, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._secret, self.ttl_s, self._clock = secret, ttl_s, clock

    @classmethod
    def for_settings(cls, settings: Settings, **kw) -> StreamTokens:
        if settings.twilio_validate and settings.twilio_auth_token:
            secret = hmac.new(settings.twilio_auth_token.encode(), b"phonebot media stream token v2", hashlib.sha256).digest()
        elif settings.stream_secret:  # the instance's, from the supervisor
            secret = bytes.fromhex(settings.stream_secret)
        else:
            secret = os.urandom(32)
        return cls(secret, settings.stream_token_ttl_s, **kw)

    def _mac(self, call_sid: str, expiry: int, params: Mapping[str, str]) -> str:
        bound = "\n".join(str(params.get(k, "")) for k in BOUND)
        digest = hmac.new(self._secret, f"{call_sid}\n{expiry}\n{bound}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def mint(self, call_sid: str, params: Mapping[str, str] | None = None) -> str:
        expiry = int(self._clock() + self.ttl_s) + 1
        return f"{expiry}.{self._mac(call_sid, expiry, params or {})}"

    def check(self, call_sid: str, params: Mapping[str, str]) -> str | None:
        """None if the stream's ``token`` is genuine for ``call_sid`` and ``params``, unexpired; else why not."""
        token = params.get(TOKEN_PARAM, "")
        if not token or not isinstance(token, str):
            return NO_TOKEN
        head, dot, mac = token.partition(".")
        if not dot or not head.isdigit() or len(head) > 12 or len(mac) > 64:
            return BAD_TOKEN
        if any(not isinstance(params.get(k, ""), str) for k in BOUND):
            return BAD_TOKEN
        expiry = int(head)
        if not hmac.compare_digest(mac, self._mac(call_sid, expiry, params)):
            return BAD_TOKEN  # forged, minted for another CallSid, or parameters changed
        now = self._clock()
        if expiry < now:
            return EXPIRED
        if expiry > now + self.ttl_s + 2:
            return BAD_TOKEN
        return None


@dataclass
class Ticket:
    """One open media stream, from the upgrade until it closes."""

    id: str
    call_sid: str = ""  # set once admitted
    slot: bool = False  # holds one of the instance's call slots
    evict: Callable[[], None] | None = None  # closes the socket while it waits for start


class StreamAdmission:
    def __init__(self, tokens: StreamTokens, instance: InstanceState, max_calls: int, *, worker: int = 0) -> None:
        self.tokens, self.instance, self.max_calls = tokens, instance, max_calls
        self.max_pending = max_calls  # unstarted sockets in this process
        self.gate: CallGate | None = None  # the store's, set once it is open (carrier.py)
        self.open: dict[str, Ticket] = {}  # stream id -> ticket, started or not
        self._ids = itertools.count(1)
        self._prefix = f"w{worker}p{os.getpid()}s"  # unique among the instance's processes

    @classmethod
    def for_settings(cls, settings: Settings, instance: InstanceState) -> StreamAdmission:
        return cls(StreamTokens.for_settings(settings), instance, settings.max_calls, worker=settings.worker_index)

    @property
    def used(self) -> int:
        return self.instance.used()

    @property
    def full(self) -> bool:
        return self.used >= self.max_calls

    def reserve(self, call_sid: str) -> bool:
        """The voice webhook: hold a call slot for this CallSid's stream (False: at capacity)."""
        return self.instance.reserve(call_sid, self.tokens.ttl_s + 2, self.max_calls)

    def open_stream(self) -> Ticket:
        """At the websocket upgrade: a ticket. Past ``max_pending`` sockets waiting for
        ``start``, the oldest of them is closed: Twilio sends ``start`` at once, so the
        socket that has waited longest is the least likely to be a call."""
        waiting = [t for t in self.open.values() if not t.call_sid]
        for old in waiting[: max(0, len(waiting) - self.max_pending + 1)]:
            self.open.pop(old.id, None)
            if old.evict is not None:
                old.evict()
        ticket = Ticket(id=f"{self._prefix}{next(self._ids)}")
        self.open[ticket.id] = ticket
        return ticket

    async def admit(self, ticket: Ticket, call_sid: str, params: Mapping[str, str]) -> str | None:
        """``start`` arrived: None if this stream is the call ``call_sid``, else the reason."""
        why = self.tokens.check(call_sid, params)
        if why is not None:
            return why
        if self.gate is not None and not await _admit_once(self.gate, call_sid):
            return DUPLICATE
        if not self.instance.take(ticket.id, call_sid, self.max_calls):
            return CAPACITY
        ticket.call_sid, ticket.slot = call_sid, True
        return None

    def close_stream(self, ticket: Ticket) -> None:
        self.open.pop(ticket.id, None)
        if ticket.slot:
            ticket.slot = False
            self.instance.release(ticket.id)


async def _admit_once(gate: CallGate, call_sid: str) -> bool:
    """The store's one-stream-per-CallSid row. A store that cannot answer does not cost a
    real caller the call: the token (genuine, bound, unexpired) admits it, said loudly."""
    try:
        return await gate.admit_stream(call_sid)
    except STORE_DOWN as exc:
        log.error("stream admission not recorded (store unavailable): admitted on its token", extra=kv(call_sid=call_sid, error=type(exc).__name__))
        return True


async def admitted_before(gate: CallGate | None, call_sid: str) -> bool:
    """The voice webhook: was this CallSid's stream admitted already (a replay)? False if the store cannot say."""
    if gate is None:
        return False
    try:
        return await gate.stream_admitted(call_sid)
    except STORE_DOWN as exc:
        log.error("replay check failed (store unavailable)", extra=kv(call_sid=call_sid, error=type(exc).__name__))
        return False


ADMISSION = web.AppKey("stream_admission", StreamAdmission)


def mint_token(app: web.Application, call_sid: str, params: Mapping[str, str] | None = None) -> str:
    """A stream token for ``call_sid`` and ``params``, as the voice webhook would issue it (tests, tools)."""
    return app[ADMISSION].tokens.mint(call_sid, params)
