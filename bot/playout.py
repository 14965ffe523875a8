"""Outbound audio for one call: 20 ms mu-law frames paced on a media clock.

The writer stays only ``lead_ms`` ahead of real time, so Twilio's buffer holds
little and a ``clear`` really stops the bot. Marks are queued between frames and
sent when the writer reaches them; Twilio echoes each once the caller has heard
the audio before it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from media.frames import FRAME_BYTES, FRAME_MS, Framer

FRAME_S = FRAME_MS / 1000


class Playout:
    def __init__(
        self,
        send_media: Callable[[bytes], Awaitable[None]],
        send_mark: Callable[[str], Awaitable[None]],
        send_clear: Callable[[], Awaitable[None]],
        *,
        lead_ms: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_media, self._send_mark, self._send_clear = send_media, send_mark, send_clear
        self.lead = lead_ms / 1000
        self.clock = clock
        self._queue: deque[bytes | str] = deque()  # bytes = one frame, str = a mark name
        self._framer = Framer(FRAME_BYTES)
        self._wake = asyncio.Event()
        self._t0 = 0.0  # media clock origin of the current run of frames
        self._n = 0  # frames sent since _t0
        self._epoch = 0  # bumped by clear(): a frame popped before it is stale
        self.frames_sent = 0
        self.on_first_frame: Callable[[], None] | None = None  # called once per arm_first_frame()

    # --- producer side -------------------------------------------------------
    def enqueue_audio(self, ulaw: bytes) -> None:
        for frame in self._framer.feed(ulaw):
            self._queue.append(frame)
        self._wake.set()

    def enqueue_mark(self, name: str) -> None:
        """Close the current audio (padding the last frame) and queue a mark after it."""
        for frame in self._framer.flush():
            self._queue.append(frame)
        self._queue.append(name)
        self._wake.set()

    async def clear(self) -> list[str]:
        """Drop everything not yet sent and tell Twilio to drop what it buffered.
        Returns the names of marks that were dropped before being sent."""
        dropped = [x for x in self._queue if isinstance(x, str)]
        self._queue.clear()
        self._framer.reset()
        self._n = 0
        self._t0 = 0.0
        self._epoch += 1
        await self._send_clear()
        return dropped

    @property
    def queued_ms(self) -> float:
        frames = sum(1 for x in self._queue if not isinstance(x, str))
        return frames * FRAME_MS + self._framer.pending / 8

    @property
    def idle(self) -> bool:
        return not self._queue and not self._framer.pending

    def ahead_ms(self) -> float:
        """How much sent audio Twilio still has to play (by our media clock)."""
        if not self._t0:
            return 0.0
        return max(0.0, (self._t0 + self._n * FRAME_S - self.clock()) * 1000)

    # --- the writer task -------------------------------------------------------
    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, str):
                await self._send_mark(item)
                continue
            now = self.clock()
            if not self._t0 or now > self._t0 + self._n * FRAME_S + 0.1:
                # first frame, or the queue ran dry: restart the media clock now
                self._t0, self._n = now, 0
            due = self._t0 + self._n * FRAME_S
            wait = due - self.lead - now
            if wait > 0:
                epoch = self._epoch
                await asyncio.sleep(wait)
                if epoch != self._epoch:
                    continue  # cleared while we waited: this frame is stale
            self._n += 1
            self.frames_sent += 1
            cb, self.on_first_frame = self.on_first_frame, None
            await self._send_media(item)
            if cb is not None:
                cb()
