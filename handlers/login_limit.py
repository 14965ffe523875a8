"""How fast anyone may guess the API key, at every door that takes it: the console form,
the one-time ``?key=`` links of /console and /phone, and the bearer key of /v1
(handlers/api_gate.py). One limiter per app, so the doors share their buckets.

Wrong keys are counted in two token buckets: one per client address (``PER_ADDRESS``
wrong keys at once, then one more every ``ADDRESS_REFILL_S``) and one for the whole
server (``GLOBAL`` at once, then one every ``GLOBAL_REFILL_S``), so many addresses
together cannot guess faster either; an IPv6 client's bucket is its /64. The key is
compared first (in constant time): the right key is always let in, whatever the
buckets say, so a crowd of guessers cannot lock the owner out; a wrong key past an
empty bucket answers 429 with Retry-After (and is not counted again). The key itself
(API_KEY, at least 16 characters) is what makes guessing hopeless; the buckets keep
guessers' cost and noise down. The buckets live in the instance's shared state
(bot/instance.py), so every worker of an instance counts into the same ones. The address is the client's (handlers/client_ip.py): the TCP
peer, or the forwarded address when the peer is one of TRUSTED_PROXIES; without that
setting every client behind a reverse proxy shares the proxy's bucket.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from bot.logs import kv
from handlers.client_ip import client_address
from handlers.state import INSTANCE

log = logging.getLogger("handlers.login_limit")

PER_ADDRESS, ADDRESS_REFILL_S = 10, 30.0  # 10 wrong keys, then 2 a minute per address
GLOBAL, GLOBAL_REFILL_S = 100, 1.0  # 100 wrong keys, then 60 a minute in all
MAX_ADDRESSES = 10_000  # buckets kept; the oldest go first (a full bucket is no loss)
IPV6_PREFIX = 64  # one IPv6 host usually holds a whole /64: it is one address here


def bucket_of(address: str) -> str:
    """The per-address bucket's name: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket: not one /64 for all of them
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return address


class Bucket:
    def __init__(self, size: int, refill_s: float, now: float) -> None:
        self.size, self.refill_s, self.tokens, self.t = size, refill_s, float(size), now

    def level(self, now: float) -> float:
        self.tokens = min(float(self.size), self.tokens + (now - self.t) / self.refill_s)
        self.t = now
        return self.tokens

    def wait_s(self, now: float) -> float:
        """Seconds until one more attempt is allowed (0 if it is now)."""
        return max(0.0, (1 - self.level(now)) * self.refill_s)


class MemoryBuckets:
    """The buckets in this process (tests; bot.instance.InstanceState shares them between
    an instance's processes, so WORKERS does not multiply the limits)."""

    def __init__(self) -> None:
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    def bucket_level(self, name: str, size: int, refill_s: float, now: float) -> float:  # noqa: ARG002 - the Buckets signature
        own = self.buckets.get(name)
        return own.level(now) if own else float(size)

    def bucket_take(self, name: str, size: int, refill_s: float, now: float) -> float:
        own = self.buckets.pop(name, None) or Bucket(size, refill_s, now)
        own.level(now)
        own.tokens -= 1
        self.buckets[name] = own  # newest last
        while len(self.buckets) > MAX_ADDRESSES:
            self.buckets.popitem(last=False)
        return own.tokens


class Buckets(Protocol):
    def bucket_level(self, name: str, size: int, refill_s: float, now: float) -> float: ...

    def bucket_take(self, name: str, size: int, refill_s: float, now: float) -> float: ...


GLOBAL_NAME = "*"  # the whole server's bucket (no address is spelled so)


def _wait_s(level: float, refill_s: float) -> float:
    return max(0.0, (1 - level) * refill_s)


class LoginLimit:
    def __init__(self, clock: Callable[[], float] = time.monotonic, buckets: Buckets | None = None) -> None:
        self.clock = clock
        self.buckets: Buckets = buckets if buckets is not None else MemoryBuckets()

    def retry_after(self, address: str) -> int:
        """0 if ``address`` may try a key now, else whole seconds to wait."""
        now = self.clock()
        everyone = _wait_s(self.buckets.bucket_level(GLOBAL_NAME, GLOBAL, GLOBAL_REFILL_S, now), GLOBAL_REFILL_S)
        own = _wait_s(self.buckets.bucket_level(bucket_of(address), PER_ADDRESS, ADDRESS_REFILL_S, now), ADDRESS_REFILL_S)
        return math.ceil(max(everyone, own))

    def failed(self, address: str) -> str | None:
        """Count a wrong key; name the bucket it emptied ("address", "global"), if any."""
        now = self.clock()
        own = self.buckets.bucket_take(bucket_of(address), PER_ADDRESS, ADDRESS_REFILL_S, now)
        everyone = self.buckets.bucket_take(GLOBAL_NAME, GLOBAL, GLOBAL_REFILL_S, now)
        if 0 <= everyone < 1:
            return "global"
        return "address" if 0 <= own < 1 else None


LOGIN_LIMIT = web.AppKey("login_limit", LoginLimit)


def install(app: web.Application) -> None:
    """One limiter per app, shared by every login door (safe to call more than once);
    its buckets are the instance's (every worker's), when the app has them."""
    if LOGIN_LIMIT not in app:
        app[LOGIN_LIMIT] = LoginLimit(buckets=app.get(INSTANCE))


CODE = "too_many_attempts"


def retry_after(request: web.Request) -> int:
    """0 if this client may try a key now, else whole seconds to wait."""
    return request.app[LOGIN_LIMIT].retry_after(client_address(request))


def message(wait: int) -> str:
    return f"too many wrong keys: try again in {wait} s"


def check(request: web.Request) -> None:
    """Raise 429 with Retry-After if this client (or everyone) guessed too often."""
    wait = retry_after(request)
    if wait:
        raise web.HTTPTooManyRequests(
            text=json.dumps({"error": {"code": CODE, "message": message(wait)}}),
            content_type="application/json", headers={"Retry-After": str(wait)},
        )


def failed(request: web.Request) -> None:
    """Count a wrong key from this client."""
    address = client_address(request)
    emptied = request.app[LOGIN_LIMIT].failed(address)
    if emptied:  # once per lock-out, not once per refused request
        log.warning("too many wrong keys: key login paused", extra=kv(limit=emptied, address=address))
