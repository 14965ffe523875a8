"""A call's tasks alone: one owned turn task, the speculative turn's gate, guarded
helpers, all spawned into a real task group as ``run_call`` does."""

from __future__ import annotations

import asyncio

from bot.call_tasks import CallTasks
from bot.metrics import Metrics


def rig(tg: asyncio.TaskGroup) -> tuple[CallTasks, list[int | None], Metrics]:
    crashed: list[int | None] = []
    metrics = Metrics()
    return CallTasks(tg.create_task, call_sid="CA1", metrics=metrics, crashed=crashed.append), crashed, metrics


async def test_a_new_turn_task_cancels_the_one_before_it():
    async with asyncio.TaskGroup() as tg:
        tasks, _, _ = rig(tg)
        first = tasks.run(asyncio.sleep(3600), name="turn-1", turn=1)
        await asyncio.sleep(0)
        second = tasks.run(asyncio.sleep(0.01), name="turn-2", turn=2)
        assert tasks.turn is second
    assert first.cancelled() and not second.cancelled()


async def test_a_bug_in_a_turn_or_a_helper_is_counted_and_the_call_goes_on(caplog):
    async def bug() -> None:
        raise KeyError("oops")

    async with asyncio.TaskGroup() as tg:  # the group would fail (the call would end) if one escaped
        tasks, crashed, metrics = rig(tg)
        tasks.run(bug(), name="turn-3", turn=3)
        tasks.helper(bug(), "mouth-to-ear")
    assert tasks.errors == 2 and crashed == [3]  # only the turn gives the floor back
    assert metrics.stage_errors.labels("call", "bug")._value.get() == 2
    assert "turn task failed" in caplog.text and "call helper failed" in caplog.text


async def test_the_speculative_gate_opens_only_for_the_owned_turn():
    async with asyncio.TaskGroup() as tg:
        tasks, _, _ = rig(tg)
        gate = asyncio.Event()
        first = tasks.run(gate.wait(), name="turn-1", turn=1, gate=gate)
        await asyncio.sleep(0)
        assert tasks.confirm() and gate.is_set()
        assert not tasks.confirm()  # once
        await first

        gate2 = asyncio.Event()
        spec = tasks.run(asyncio.sleep(3600), name="turn-2", turn=2, gate=gate2)
        await asyncio.sleep(0)
        tasks.run(asyncio.sleep(0), name="reprompt")  # replaced: no longer the owned turn
        assert not tasks.confirm() and not gate2.is_set()
        await asyncio.sleep(0)
        assert spec.cancelled()

        spec3 = tasks.run(asyncio.sleep(3600), name="turn-3", turn=3, gate=asyncio.Event())
        await asyncio.sleep(0)
        assert tasks.cancel_speculation() and tasks.turn is None
        assert not tasks.cancel_speculation()
    assert spec3.cancelled()


async def test_cancel_turn_waits_for_the_task_and_take_leaves_none_owned():
    stopped = asyncio.Event()

    async def turn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    async with asyncio.TaskGroup() as tg:
        tasks, _, _ = rig(tg)
        tasks.run(turn(), name="turn-1", turn=1)
        await asyncio.sleep(0)
        await tasks.cancel_turn()
        assert stopped.is_set() and tasks.turn is None
        await tasks.cancel_turn()  # nothing owned: a no-op
        t = tasks.run(asyncio.sleep(3600), name="turn-2", turn=2, gate=asyncio.Event())
        await asyncio.sleep(0)
        assert tasks.take() is t and tasks.turn is None and not tasks.confirm()
        t.cancel()


async def test_a_turn_replaced_before_it_began_leaves_no_coroutine_unawaited():
    import gc
    import warnings

    async def prompt() -> None:
        await asyncio.sleep(0)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        async with asyncio.TaskGroup() as tg:
            tasks, _, _ = rig(tg)
            first = tasks.run(prompt(), name="reprompt")
            tasks.run(prompt(), name="turn-2", turn=2)  # the reprompt is cancelled before it ever ran
            tasks.helper(prompt(), "measure").cancel()
        gc.collect()
    assert first.cancelled()
    assert not [w for w in seen if "never awaited" in str(w.message)]
