"""The "heard" ledger alone: which sentences' marks came back, what a barge-in keeps,
waiting for an echo. No socket, no playout; the clock is scripted."""

from __future__ import annotations

import asyncio

from bot.heard import HeardLedger


def ledger(now: list[float] | None = None) -> HeardLedger:
    clock = now if now is not None else [0.0]
    return HeardLedger(now=lambda: clock[0])


async def test_only_echoed_sentences_are_heard_in_the_order_they_came_back():
    h = ledger()
    for i, text in enumerate(["One.", "Two.", "Three."]):
        h.expect(f"t1s{i}", text)
    h.echo("t1s0")
    h.echo("t1s1")
    assert h.heard == ["One.", "Two."] and h.unheard == 1
    h.echo("nobody-sent-this")  # a forged or stale echo changes nothing
    h.echo("t1s0")  # nor does a duplicate
    assert h.heard == ["One.", "Two."] and h.unheard == 1


async def test_a_barge_in_takes_what_was_heard_and_later_echoes_do_not_count():
    h = ledger()
    for i, text in enumerate(["First part.", "Second part.", "Third part."]):
        h.expect(f"t2s{i}", text)
    h.echo("t2s0")
    heard, unheard = h.interrupted()
    assert heard == ["First part."] and unheard == 2
    h.echo("t2s1")  # audio dropped by the clear, echoed anyway by a far end that played it late
    assert h.heard == [] and h.unheard == 0
    assert h.interrupted() == ([], 0)  # a second barge-in on the same turn keeps nothing twice


async def test_a_new_turn_forgets_the_last_one_and_drop_unsent_keeps_what_was_heard():
    h = ledger()
    h.expect("a", "Heard.")
    h.expect("b", "Queued.")
    h.echo("a")
    h.drop_unsent()  # the last words clear the playout: "Queued." is never heard
    h.echo("b")
    assert h.heard == ["Heard."] and h.unheard == 0
    h.new_turn()
    assert h.heard == [] and h.unheard == 0


async def test_wait_returns_at_the_echo_with_its_time_and_forgets_the_mark():
    now = [12.5]
    h = ledger(now)
    h.expect("greeting")  # a prompt: no sentence text, but a waiter
    waiting = asyncio.create_task(h.wait("greeting", 5.0))
    timing = asyncio.create_task(h.heard_at("greeting"))
    await asyncio.sleep(0)
    assert not waiting.done()
    h.echo("greeting")
    assert await waiting is True
    assert await timing == 12.5
    assert h.heard == []  # a prompt is never a sentence of the turn
    assert await h.heard_at("greeting") is None  # forgotten once waited for


async def test_wait_gives_up_at_its_bound_when_no_echo_comes():
    h = ledger()
    h.expect("t3s0", "Lost.")
    assert await h.wait("t3s0", 0.01) is False
    assert await h.wait("t3s0", 5.0) is True  # forgotten: nothing to wait for any more
    assert await h.wait("never-expected", 5.0) is True
    assert await h.heard_at("never-expected") is None
    h.echo("t3s0")  # the late echo still tells which sentence was heard
    assert h.heard == ["Lost."]
