"""Saving a caller's message outside the dialogue's time: handed over, retried, idempotent.

The call hands each version of a message (a draft as the form grows, then the complete
message or, at hang-up, the final incomplete one) to the app's ``MessageSaver``. One task
per message (its ``uid``) writes the newest version it has, retrying a busy or unreachable
database with back-off until it commits; it belongs to the app, so a turn that times out,
a barge-in or the caller hanging up never cancels it. The store's ``save_message`` is
idempotent per uid, so a retry whose first try did commit (PostgreSQL acknowledged the
commit after the connection broke) saves nothing twice and queues no second notification.

A complete version wins over any incomplete one handed over after it (a late hang-up
after the caller confirmed). A permanent failure (the disk is full, a bug) is not
retried: the waiting dialogue is told, so the caller hears that it failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from bot.logs import kv
from bot.store.api import NewMessage, Store

log = logging.getLogger("bot.store.saver")

_PERMANENT_WORDS = ("disk is full", "disk full", "no space left", "could not extend file", "readonly database", "read-only")


def permanent(exc: BaseException) -> bool:
    """Retrying cannot help: a full disk, a read-only database, a constraint or a bug."""
    from sqlalchemy import exc as sa_exc

    text = str(exc).lower()
    if any(w in text for w in _PERMANENT_WORDS):
        return True
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return True
    return isinstance(exc, (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError, TypeError, ValueError, KeyError))


def _retrieved(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled():
        fut.exception()


@dataclass
class _Job:
    msg: NewMessage
    final: bool
    version: int = 1
    committed: int = 0
    waiters: list[tuple[int, asyncio.Future[int]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class MessageSaver:
    """``retry_base_s`` doubling to ``retry_cap_s`` between tries of a failed save."""

    def __init__(self, store: Store, *, retry_base_s: float = 0.2, retry_cap_s: float = 5.0) -> None:
        self.store = store
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
        self._jobs: dict[str, _Job] = {}
        self.retries = 0  # failed tries that were retried (for tests and logs)

    def save(self, msg: NewMessage, *, final: bool) -> asyncio.Future[int]:
        """Hand over a version of message ``msg.uid`` (required). The future resolves with
        its id once this version, or a newer one, is committed; it fails only on a
        permanent error. A draft (incomplete, not ``final``) of a message already handed
        over complete is ignored."""
        if not msg.uid:
            raise ValueError("a message handed to the saver needs its uid")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieved)  # a draft's outcome nobody waits for is only logged
        job = self._jobs.get(msg.uid)
        if job is None:
            job = self._jobs[msg.uid] = _Job(msg, final)
            job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"save-{msg.uid[:8]}")
        elif not (job.msg.complete and not msg.complete):
            job.msg, job.final, job.version = msg, job.final or final, job.version + 1
        elif final:
            job.final = True
        job.waiters.append((job.version, fut))
        return fut

    @property
    def pending(self) -> int:
        return len(self._jobs)

    async def close(self, timeout: float) -> None:
        """Give the saves still running ``timeout`` seconds (at shutdown); log what is left."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for uid, job in list(self._jobs.items()):
            log.error("message not saved before shutdown", extra=kv(call_sid=job.msg.call_sid, uid=uid, complete=job.msg.complete))
            if job.task is not None:
                job.task.cancel()

    async def _run(self, job: _Job) -> None:
        tries = 0
        try:
            while job.committed < job.version:
                version, msg, final = job.version, job.msg, job.final
                try:
                    mid = await self.store.save_message(msg, final=final)
                except Exception as exc:  # noqa: BLE001 - permanent() sorts every failure: retried or reported, never lost
                    if permanent(exc):
                        log.error("message not saved", extra=kv(call_sid=msg.call_sid, uid=msg.uid, error=type(exc).__name__))
                        self._settle(job, version, exc)
                        continue
                    tries += 1
                    self.retries += 1
                    delay = min(self.retry_cap_s, self.retry_base_s * 2 ** min(tries - 1, 16)) * random.uniform(0.8, 1.2)
                    log.warning("message save failed, retrying", extra=kv(
                        call_sid=msg.call_sid, uid=msg.uid, error=type(exc).__name__, attempt=tries, retry_in_s=round(delay, 2)))
                    await asyncio.sleep(delay)
                    continue
                if tries:
                    log.info("message saved after retries", extra=kv(call_sid=msg.call_sid, uid=msg.uid, attempts=tries + 1))
                tries = 0
                self._settle(job, version, mid)
        finally:
            self._jobs.pop(job.msg.uid, None)
            for _, fut in job.waiters:
                if not fut.done():
                    fut.cancel()

    @staticmethod
    def _settle(job: _Job, version: int, result: int | BaseException) -> None:
        job.committed = version
        keep = []
        for v, fut in job.waiters:
            if v > version:
                keep.append((v, fut))
            elif not fut.done():
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        job.waiters = keep
