"""The virtual-time loop (tests/virtual_time.py): idle waits take no real time, and work
outside the loop (executor jobs, threads, peers in another thread or process) keeps
real time, so a budget never cuts such work short earlier than a stock loop would."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest
from aiohttp import web

from tests.virtual_time import VirtualTimeLoop

pytestmark = pytest.mark.virtual_time


async def test_the_test_runs_on_the_virtual_loop_and_idle_waits_jump():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    t0, r0 = loop.time(), time.monotonic()
    await asyncio.sleep(30)
    async with asyncio.timeout(60):  # timers keep their order and their sum
        await asyncio.gather(asyncio.sleep(10), asyncio.sleep(20))
    assert 50 <= loop.time() - t0 < 50.1
    assert time.monotonic() - r0 < 5  # 50 virtual seconds, a blink of real time
    assert loop.jumps >= 3


async def test_an_executor_job_keeps_real_time():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # 0.3 s of thread work inside a 2 s budget: a loop that jumped to the budget's timer
    # while the job ran would time out here
    async with asyncio.timeout(2.0):
        await loop.run_in_executor(None, time.sleep, 0.3)
    assert 0.3 <= loop.time() - t0 < 2.0
    # and a budget shorter than the work still cuts it
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await loop.run_in_executor(None, time.sleep, 0.3)


async def test_a_busy_thread_keeps_real_time():
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def work() -> None:
        time.sleep(0.3)  # not an idle point: the loop must wait in real time
        loop.call_soon_threadsafe(done.set_result, "worked")

    threading.Thread(target=work, daemon=True).start()
    async with asyncio.timeout(2.0):
        assert await done == "worked"


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query["s"]))
    return web.Response(text="late")


async def test_a_server_in_the_same_loop_is_virtual(aiohttp_server):
    loop = asyncio.get_running_loop()
    app = web.Application()
    app.router.add_get("/", _slow)
    server = await aiohttp_server(app)
    t0, r0 = loop.time(), time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/?s=30")) as r:
        assert await r.text() == "late"
    assert 30 <= loop.time() - t0 < 31 and time.monotonic() - r0 < 5


async def test_a_peer_outside_the_loop_keeps_real_time():
    """A server on its own loop in another thread (as another process would be): while
    its answer is on the way, the client's budget runs on real time."""
    ready, box = threading.Event(), {}

    def serve() -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_get("/", _slow)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            box["port"] = runner.addresses[0][1]
            box["stop"] = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"].wait()
            await runner.cleanup()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        async with asyncio.timeout(3.0), aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{box['port']}/?s=0.4") as r:
                assert await r.text() == "late"
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
