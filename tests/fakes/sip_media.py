"""A stand-in for ``RtpMedia`` (bot/carriers/sip/media_session.py) for signalling tests:
it binds a real UDP port (so a peer's RTP lands somewhere), counts what it receives,
echoes marks at once and records what the bot played and how it was configured."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

from bot.transport import AudioIn, DtmfIn, MarkIn


class FakeMedia:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.local_port = sock.getsockname()[1]
        self.configured: list = []
        self.played = 0
        self.cleared = 0
        self.closed = asyncio.Event()
        self.timed_out = False
        self._q: asyncio.Queue[AudioIn | DtmfIn | MarkIn | None] = asyncio.Queue()

    @classmethod
    async def open(cls, *, host: str = "127.0.0.1", port_min: int = 0, port_max: int = 0) -> FakeMedia:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        return cls(sock)

    def configure(self, params, *, peer_host: str | None = None) -> None:
        self.configured.append(params)

    async def events(self) -> AsyncIterator[AudioIn | DtmfIn | MarkIn]:
        while True:
            ev = await self._q.get()
            if ev is None:
                return
            yield ev

    def inject(self, ev: AudioIn | DtmfIn | MarkIn) -> None:
        self._q.put_nowait(ev)

    def play(self, frames: bytes) -> None:
        self.played += len(frames) // 160

    def mark(self, name: str) -> None:
        self._q.put_nowait(MarkIn(name))

    def clear(self) -> None:
        self.cleared += 1

    def stop_media(self) -> None:
        """The far end's media stopped (as RtpMedia's timeout would end events())."""
        self.timed_out = True
        self._q.put_nowait(None)

    async def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self._q.put_nowait(None)
            self.sock.close()

    def stats(self) -> dict:
        return {"played": self.played}
