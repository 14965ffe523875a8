"""The tasks of one call, spawned into the call's task group (``bot.run_call`` owns it):
at most one owned turn task (a caller turn, a prompt, the last words), which a barge-in
or the next turn cancels; the speculative turn's gate (opened when the controller
confirms it); and guarded helpers (a barge-in's clear, a finalize, a measurement). A
bug in a turn or a helper is logged and counted, and the call goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bot.logs import kv
from bot.metrics import Metrics

log = logging.getLogger("bot.call")

CANCEL_BOUND_S = 0.5

Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]


class CallTasks:
    """``crashed(turn)``: a turn task died of a bug (``turn``: its number, None for a prompt)."""

    def __init__(self, spawn: Spawn, *, call_sid: str, metrics: Metrics, crashed: Callable[[int | None], None]) -> None:
        self._spawn, self.call_sid, self.metrics, self._crashed = spawn, call_sid, metrics, crashed
        self._turn: asyncio.Task[Any] | None = None
        self._spec: tuple[asyncio.Event, asyncio.Task[Any]] | None = None  # the speculative turn: (gate, task)
        self.errors = 0  # turn tasks and helpers that failed of a bug (the call went on)

    @property
    def turn(self) -> asyncio.Task[Any] | None:
        """The owned turn task, if one was started and not taken."""
        return self._turn

    def run(self, coro: Coroutine[Any, Any, Any], *, name: str, turn: int | None = None, gate: asyncio.Event | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as the call's one owned turn task, replacing (cancelling) any before
        it. ``gate``: a speculative turn's, which ``confirm`` opens."""
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        task = self._turn = self._spawn(self._guarded(coro, name, turn))
        task.add_done_callback(lambda _t: coro.close())  # cancelled before it began: its coroutine is closed, not left unawaited
        if gate is not None:
            self._spec = (gate, task)
        return task

    def take(self) -> asyncio.Task[Any] | None:
        """The owned turn task, no longer owned (the caller cancels it); no speculative turn."""
        task, self._turn, self._spec = self._turn, None, None
        return task

    def confirm(self) -> bool:
        """Open the speculative turn's gate: it may speak. False if there is none still
        running as the owned turn."""
        spec, self._spec = self._spec, None
        if spec is None or spec[1] is not self._turn or spec[1].done():
            return False
        spec[0].set()
        return True

    def cancel_speculation(self) -> bool:
        """Cancel the speculative turn (it restores the conversation); False if there was none."""
        spec, self._spec = self._spec, None
        if spec is None:
            return False
        if spec[1] is self._turn:
            self._turn = None
        spec[1].cancel()
        return True

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Spawn a task that guards itself (in the call's task group, unowned)."""
        return self._spawn(coro)

    def helper(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Spawn a helper guarded like a turn: a bug in one is logged and counted."""
        task = self._spawn(self._guarded(coro, name, None, helper=True))
        task.add_done_callback(lambda _t: coro.close())
        return task

    async def cancel_turn(self) -> None:
        """Cancel the owned turn task and wait for it, bounded."""
        task = self.take()
        if task is not None:
            task.cancel()
        await self.cancelled(task)

    async def cancelled(self, task: asyncio.Task[Any] | None) -> None:
        """Until ``task`` (cancelled) is done, at most CANCEL_BOUND_S."""
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=CANCEL_BOUND_S)
        if not task.done():
            log.error("turn did not cancel in time", extra=kv(call_sid=self.call_sid))

    async def _guarded(self, coro: Coroutine[Any, Any, Any], name: str, turn: int | None, *, helper: bool = False) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the call: log it, the caller has the floor again
            log.exception("call helper failed" if helper else "turn task failed", extra=kv(call_sid=self.call_sid, task=name))
            self.errors += 1
            self.metrics.stage_errors.labels("call", "bug").inc()
            if not helper:
                self._crashed(turn)
