"""The deliverer: sends what the outbox holds until each row is delivered.

Rows are leased (``claimed_until``), sent, then marked delivered; a failure sets the
next try after an exponential back-off with jitter, capped. All state is in the
database, so a restart (or another instance) carries on where a killed process left
off: a row it had leased is due again once the lease runs out. A send times out well
inside the lease, so a live claimer never loses its row to another.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections import Counter
from typing import TYPE_CHECKING

from bot.logs import kv
from bot.store.channels import Channels, DeliveryError
from bot.store.sql import OutboxItem, SqlStore

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.store.deliver")


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before try ``attempts + 1``: base * 2^(attempts-1), capped, with +-20% jitter."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return float(delay * random.uniform(0.8, 1.2))


class Deliverer:
    """``poll_s``: how often the database is asked when nothing woke it. This process's
    own saves wake it at once (``outbox_changed``) and the retries it schedules wake it
    when due, so the poll only finds rows another process left (its lease ran out, or it
    died before sending): each empty poll is a database round trip, which an idle bot
    should not make every second.

    Each row is sent in its own task with its own timeout (``NOTIFY_SEND_TIMEOUT_S``,
    inside the lease): a receiver that hangs holds at most ``PER_TARGET`` sends of its
    own, and the claim skips its rows meanwhile, so e-mail, SMS and the other webhooks
    go on at once."""

    MAX_INFLIGHT = 32  # sends at once, in this process
    PER_TARGET = 2  # sends at once to one target (URL, address, number)

    def __init__(self, store: SqlStore, settings: Settings, *, poll_s: float = 5.0) -> None:
        self.store, self.s, self.poll_s = store, settings, poll_s
        self.lease_s = settings.notify_lease_s
        self.send_timeout = max(0.2, min(settings.notify_send_timeout_s, self.lease_s / 2))
        self.channels = Channels(settings, timeout=self.send_timeout)
        self.sent = 0
        self._retries: list[float] = []  # heap: loop times of the retries this process scheduled
        self._inflight: dict[asyncio.Task[None], OutboxItem] = {}

    def _busy(self) -> list[str]:
        return [t for t, n in Counter(i.target for i in self._inflight.values()).items() if n >= self.PER_TARGET]

    async def run(self) -> None:
        await self.channels.start()
        try:
            while True:
                room = self.MAX_INFLIGHT - len(self._inflight)
                batch: list[OutboxItem] = []
                if room > 0:
                    try:
                        batch = await self.store.claim_due(lease_s=self.lease_s, limit=min(10, room), busy=self._busy())
                    except Exception as exc:  # noqa: BLE001 - the database is down: try again later, never die
                        log.error("outbox claim failed", extra=kv(error=type(exc).__name__))
                        await asyncio.sleep(self.poll_s)
                        continue
                if batch:
                    await self._start(batch)
                    continue  # more may be due
                await self._idle()
        finally:
            tasks = list(self._inflight)
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=2.0)
            await self.channels.close()

    async def _start(self, batch: list[OutboxItem]) -> None:
        """Deliver each claimed row in its own task, at most PER_TARGET at once per target."""
        per_target = Counter(i.target for i in self._inflight.values())
        later = []
        for item in batch:
            if per_target[item.target] >= self.PER_TARGET:  # one claim can bring several rows of one target
                later.append(item.id)
                continue
            per_target[item.target] += 1
            task = asyncio.get_running_loop().create_task(self._guarded(item), name=f"notify-{item.id}")
            self._inflight[task] = item
            task.add_done_callback(self._done)
        if later:
            await self._release(later)

    async def _idle(self) -> None:
        """Nothing claimed: wait for a new row, the next retry falling due, or the poll."""
        self.store.outbox_changed.clear()
        now = asyncio.get_running_loop().time()
        if self._retries and self._retries[0] <= now:
            while self._retries and self._retries[0] <= now:
                heapq.heappop(self._retries)
            return  # due now: the claim takes it
        wait = min(self.poll_s, self._retries[0] - now) if self._retries else self.poll_s
        try:
            await asyncio.wait_for(self.store.outbox_changed.wait(), wait)
        except TimeoutError:
            pass

    def _done(self, task: asyncio.Task[None]) -> None:
        item = self._inflight.pop(task)
        if len(self._inflight) == self.MAX_INFLIGHT - 1 or sum(i.target == item.target for i in self._inflight.values()) == self.PER_TARGET - 1:
            self.store.outbox_changed.set()  # room again: rows the claim skipped may go now

    async def _release(self, ids: list[int]) -> None:
        try:
            await self.store.release(ids)
        except Exception as exc:  # noqa: BLE001 - their lease makes them due again
            log.error("outbox release failed", extra=kv(rows=len(ids), error=type(exc).__name__))

    async def _guarded(self, item: OutboxItem) -> None:
        try:
            await self._one(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - could not record the result: the lease makes it due again
            log.error("outbox update failed", extra=kv(outbox_id=item.id, error=type(exc).__name__))

    async def _retry(self, item: OutboxItem, error: str) -> float:
        """Schedule the row's next try; wake for it (measured after the write, so the row
        is due by then)."""
        delay = backoff(item.attempts, self.s.notify_retry_base_s, self.s.notify_retry_cap_s)
        await self.store.failed(item.id, retry_in=delay, error=error)
        heapq.heappush(self._retries, asyncio.get_running_loop().time() + delay)
        self.store.outbox_changed.set()  # an idle wait measured before this retry was known would sleep to the poll
        return delay

    async def _one(self, item: OutboxItem) -> None:
        fields = dict(outbox_id=item.id, channel=item.channel, attempt=item.attempts, key=item.idem_key)
        try:
            try:
                self.channels.prepare(item.channel)
                async with asyncio.timeout(self.send_timeout + 1.0):  # a channel that ignores its own timeout
                    await self.channels.send(item)
            except TimeoutError:
                raise DeliveryError(f"{item.channel}: timed out") from None
        except DeliveryError as exc:
            delay = await self._retry(item, str(exc))
            log.warning("notification failed, will retry", extra=kv(**fields, error=str(exc), retry_in_s=round(delay, 2)))
            return
        except Exception as exc:  # a bug in a channel must not stop the others
            log.exception("notification crashed, will retry", extra=kv(**fields))
            await self._retry(item, type(exc).__name__)
            return
        await self.store.delivered(item.id)
        self.sent += 1
        log.info("notification delivered", extra=kv(**fields))
