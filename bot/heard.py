"""What the caller has heard of the bot, from the carrier's mark echoes: one ledger a call.

The playout queues a mark after each sentence of a reply (and after each prompt); the
far end echoes a mark once the caller has heard the audio before it. The ledger keeps,
for the live turn, which sentence each mark ends and which of them came back, and a
waiter per mark (to wait until a reply or a prompt was heard, or to time when it was).
A barge-in takes what was heard (the history keeps only that) and forgets the rest:
echoes of audio dropped by the ``clear`` are not "heard". No I/O; the clock is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class HeardLedger:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._text: dict[str, str] = {}  # mark -> the sentence it ends, for the live turn, not echoed yet
        self._heard: list[str] = []  # sentences of the live turn the caller has heard, in order
        self._waiters: dict[str, asyncio.Future[float]] = {}  # mark -> done at its echo (the time)

    def expect(self, mark: str, text: str | None = None) -> None:
        """``mark`` is queued: its echo says the caller heard up to it. ``text``: the
        sentence of the live turn it ends (None for a prompt)."""
        if text is not None:
            self._text[mark] = text
        self._waiters[mark] = asyncio.get_running_loop().create_future()

    def echo(self, mark: str) -> None:
        """The far end echoed ``mark``. An unknown or stale one changes nothing."""
        text = self._text.pop(mark, None)
        if text is not None:
            self._heard.append(text)
        fut = self._waiters.pop(mark, None)
        if fut is not None and not fut.done():
            fut.set_result(self._now())

    @property
    def heard(self) -> list[str]:
        """The live turn's sentences heard so far (a copy)."""
        return list(self._heard)

    @property
    def unheard(self) -> int:
        """The live turn's sentences queued or playing, not echoed yet."""
        return len(self._text)

    def new_turn(self) -> None:
        """A turn starts, or its reply was heard to the end: nothing of it is pending."""
        self._text.clear()
        self._heard = []

    def interrupted(self) -> tuple[list[str], int]:
        """A barge-in: what the caller heard of the live turn, and how many sentences they
        did not; from now on, echoes of the dropped audio do not count."""
        heard, unheard = self._heard, len(self._text)
        self.new_turn()
        return heard, unheard

    def drop_unsent(self) -> None:
        """The playout was cleared (the last words): what was queued is never heard."""
        self._text.clear()

    async def wait(self, mark: str, bound_s: float) -> bool:
        """Until the echo of ``mark``, at most ``bound_s``; False if it did not come in time
        (True at once for a mark not expected). The mark is forgotten after."""
        fut = self._waiters.get(mark)
        if fut is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(fut), bound_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(mark, None)

    async def heard_at(self, mark: str, timeout_s: float = 30.0) -> float | None:
        """When the echo of ``mark`` came (on the ledger's clock), None if it did not come
        within ``timeout_s`` or the mark is not expected. It stays expected."""
        fut = self._waiters.get(mark)
        if fut is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            return None
