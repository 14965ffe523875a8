"""Pre-warming of HTTP connection pools.

A turn should not pay a TCP + TLS handshake. When a call arrives, each cloud adapter
sends one cheap ``HEAD`` to its API host: whatever the status, the connection stays
in the pool (keep-alive) for the first real request. Adapters build their httpx
clients with ``pool_limits()`` so a warmed connection outlives the greeting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterable

import httpx

from bot.logs import kv

log = logging.getLogger("bot.providers")

KEEPALIVE_S = 90.0  # vendors close idle connections after a minute or more
WARM_EVERY_S = 20.0  # a pool used this recently needs no warming
WARM_TIMEOUT_S = 2.0


def pool_limits() -> httpx.Limits:
    return httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=KEEPALIVE_S)


class PoolWarmer:
    """Remembers when a pool was last used and warms it when it has gone cold."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._last = float("-inf")

    def used(self) -> None:
        self._last = time.monotonic()

    async def warm(self, http: httpx.AsyncClient | None, stage: str) -> None:
        if http is None or time.monotonic() - self._last < WARM_EVERY_S:
            return
        self._last = time.monotonic()
        t0 = time.monotonic()
        try:
            r = await http.request("HEAD", self.url, timeout=WARM_TIMEOUT_S)
            outcome = str(r.status_code)
        except Exception as e:  # noqa: BLE001 - warming is best effort
            outcome = type(e).__name__
        log.debug("warmed", extra=kv(stage=stage, outcome=outcome, ms=round((time.monotonic() - t0) * 1000)))


async def warm_all(adapters: Iterable[object]) -> None:
    """Warm every adapter that can be warmed, at once, bounded."""
    coros = [a.warm() for a in adapters if hasattr(a, "warm")]
    if coros:
        await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), WARM_TIMEOUT_S + 0.5)
