"""Pre-warming of HTTP connection pools.

A turn should not pay a TCP + TLS handshake. When a call arrives, each cloud adapter
sends one cheap ``HEAD`` to its API host: whatever the status, the connection stays
in the pool (keep-alive) for the first real request. Adapters build their httpx
clients with ``http_client()`` so a warmed connection outlives the greeting.

The SDKs take an httpx client; ``http_client()`` gives them one whose transport is
aiohttp's connection pool (httpx-aiohttp) instead of httpcore's: per request, httpcore
scans its pool in Python under a lock, which at hundreds of calls was a tenth of the
process. The SDKs still do auth, base URLs and errors (httpx's exception types); the
client's ``send`` skips httpx layers that do nothing for them (bot/providers/http_lean.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bot.logs import kv
from bot.providers.http_lean import LeanClient

log = logging.getLogger("bot.providers")

KEEPALIVE_S = 90.0  # vendors close idle connections after a minute or more
WARM_EVERY_S = 20.0  # a pool used this recently needs no warming
WARM_TIMEOUT_S = 2.0


def pool_limits() -> httpx.Limits:
    return httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=KEEPALIVE_S)


def http_client(timeout: float, **kwargs) -> httpx.AsyncClient:
    """An httpx client on aiohttp's pool (up to 200 connections, idle ones kept KEEPALIVE_S)."""
    return LeanClient(timeout=timeout, transport=_Transport(limits=pool_limits()), **kwargs)


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport with one correction: it maps every aiohttp connection
    error (a reset, a server that hung up) to httpx's ConnectTimeout; here only a real
    timeout stays a timeout, so the adapters do not call a dropped connection slow."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise _remapped(exc) from exc.__cause__
        response.stream = _Body(response.stream)
        return response


class _Body(httpx.AsyncByteStream):
    def __init__(self, inner) -> None:
        self._inner = inner

    async def __aiter__(self):
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _remapped(exc) from exc.__cause__

    async def aclose(self) -> None:
        await self._inner.aclose()


def _remapped(exc: httpx.TransportError) -> httpx.TransportError:
    cause = exc.__cause__
    if isinstance(exc, httpx.TimeoutException) and not isinstance(cause, (TimeoutError, aiohttp.ServerTimeoutError)):
        return httpx.ReadError(str(exc) or type(cause).__name__)
    return exc


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
