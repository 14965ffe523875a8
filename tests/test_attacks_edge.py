"""Issue 21 item 4: at the connection cap, slow bodies and idle kept-alive sockets are
evicted before a connection that has just arrived (its headers on their way)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from bot.edge import FRESH_S, ConnectionGuard
from bot.settings import Settings
from handlers.state import EDGE
from tests.test_attacks_http import hostport, serving, signed_webhook

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)


class Tr:
    def __init__(self, name: str) -> None:
        self.name, self.aborted = name, False

    def abort(self) -> None:
        self.aborted = True


async def test_eviction_order_idle_then_slow_body_then_silent_then_newest_last():
    now = [100.0]
    g = ConnectionGuard(max_connections=5, header_timeout=60, body_timeout=60, keepalive=60, clock=lambda: now[0])
    g.cap = 5
    kept, body1, body2, silent = Tr("kept"), Tr("body1"), Tr("body2"), Tr("silent")
    for t in (kept, body1, body2, silent):
        g.opened(t)
    g.busy(kept)
    g.done(kept)  # answered, kept alive
    g.reading_body(body1)
    g.reading_body(body2)
    now[0] += 5 * FRESH_S
    fresh = Tr("fresh")
    g.opened(fresh)  # a real request that has just connected: now at the cap
    order = []
    for i in range(4):
        t = Tr(f"flood{i}")
        g.opened(t)
        order.append(next(x.name for x in (kept, body1, body2, silent, fresh) if x.aborted and x.name not in order))
    assert order == ["kept", "body1", "body2", "silent"]
    assert not fresh.aborted  # it outlived every slow and idle socket
    g.opened(Tr("more"))  # only new connections left, all young: the oldest of them goes
    assert fresh.aborted and g.stats.evicted == 5


async def test_real_webhooks_on_fresh_connections_survive_a_slow_body_and_new_connection_flood(tmp_path):
    s = Settings(data_dir=tmp_path, trial=False, twilio_validate=True, twilio_auth_token="twilio-token",
                 max_connections=32, header_timeout_s=60, body_timeout_s=60)
    async with serving(s) as (app, url):
        host, port = hostport(url)
        slow = []
        for _ in range(28):  # slow bodies fill the cap
            r, w = await asyncio.open_connection(host, port)
            w.write(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 900\r\n\r\nA=")
            slow.append(w)
        await asyncio.sleep(0.3)
        stop = asyncio.Event()
        flood_socks = []

        async def flood() -> None:  # new connections that say nothing, as fast as they open
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    flood_socks.append((await asyncio.open_connection(host, port))[1])
                await asyncio.sleep(0.01)

        flooder = asyncio.create_task(flood())
        ok = failed = 0
        try:
            for _ in range(20):
                params, headers = signed_webhook(url)
                try:
                    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                        async with http.post(url + "/twilio/voice", data=params, headers=headers) as r:
                            ok += r.status == 200
                except aiohttp.ClientError:
                    failed += 1
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await flooder
            for w in slow + flood_socks:
                w.close()
        assert (ok, failed) == (20, 0)
        assert app[EDGE].stats.evicted > 0  # the cap was met: slow bodies and silent sockets made room
