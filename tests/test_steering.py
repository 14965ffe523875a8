"""The supervisor's two small parts, on real sockets: the reuseport steering program sends
new connections only to the sockets it names (bot/shell/steering.py), and the stand-in answers
livez, a 503 readyz, the busy message and an apology (bot/shell/standin.py)."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from bot.shell.listen import bind
from bot.shell.standin import StandIn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reuseport steering is Linux's")


def accepted(socks: list[socket.socket]) -> list[int]:
    counts = []
    for s in socks:
        n = 0
        while True:
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                break
            conn.close()
            n += 1
        counts.append(n)
    return counts


def test_new_connections_go_only_to_the_sockets_steered_to():
    from bot.shell.steering import steer

    first = bind("127.0.0.1", 0, reuse_port=True)
    port = first.getsockname()[1]
    socks = [first, *(bind("127.0.0.1", port, reuse_port=True) for _ in range(2))]
    try:
        for s in socks:
            s.setblocking(False)

        def spread(targets: list[int], n: int = 40) -> list[int]:
            steer(socks[0], targets)
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
            try:
                for _ in range(100):  # the handshakes complete in the kernel
                    got = accepted(socks)
                    if sum(got):
                        return got
                return [0, 0, 0]
            finally:
                for c in clients:
                    c.close()

        assert spread([]) == [40, 0, 0]  # no worker ready: the supervisor's own socket
        assert spread([2]) == [0, 0, 40]  # one ready: every connection, none to the loading one
        both = spread([1, 2])
        assert both[0] == 0 and both[1] > 0 and both[2] > 0 and sum(both) == 40
    finally:
        for s in socks:
            s.close()


async def test_the_stand_in_answers_livez_readyz_and_the_voice_webhook():
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    standin = StandIn("All our lines are busy.", lambda: "workers 0/2 ready")
    standin.serve(sock)

    async def ask(head: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        out = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return out

    try:
        assert (await ask(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 200")
        ready = await ask(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ready.startswith(b"HTTP/1.1 503") and b"workers 0/2 ready" in ready
        voice = await ask(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert voice.startswith(b"HTTP/1.1 200") and b"All our lines are busy." in voice and b"<Hangup" in voice
        after = await ask(b"POST /twilio/after HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert b"Sorry" in after and b"<Hangup" in after
        other = await ask(b"GET /console HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in other
        # a client that never finishes its head is dropped, not waited on forever
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /livez HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        standin.close()
        sock.close()
