"""The turn pipeline alone, with a fake session (``TurnHost``) and a fake turn controller
(``BotSide``): real scripted providers, a real playout whose far end echoes every mark
(the caller hears everything), a real heard ledger and call record."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Coroutine
from typing import Any

import pytest

from bot.call_record import CallRecord
from bot.conversation import Action, Conversation
from bot.errors import StageError
from bot.heard import HeardLedger
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.playout import Playout
from bot.prompts import PromptBank
from bot.turn_pipeline import Speculation, TurnPipeline
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

ULAW_SILENCE = b"\xff" * 160


class FakeHost:
    """Records what the pipeline asks of the session."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.judged: list[tuple[int, str | None]] = []
        self.kept = 0
        self.carried: list[Action] = []
        self.gave_up = 0
        self.helpers: list[asyncio.Task[Any]] = []

    def notify(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))

    def judge_words(self, n: int, text: str | None) -> None:
        self.judged.append((n, text))

    def helper(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.helpers.append(task)
        return task

    async def settled(self) -> None:
        pass

    def turn_kept(self) -> None:
        self.kept += 1

    async def carry_out(self, action: Action) -> None:
        self.carried.append(action)

    async def give_up(self) -> None:
        self.gave_up += 1


class FakeBot:
    def __init__(self) -> None:
        self.turn_no = 1
        self.calls: list[str] = []

    def bot_speaking(self) -> None:
        self.calls.append("speaking")

    def bot_done(self, n: int | None = None) -> None:
        self.calls.append(f"done:{n}")


class Rig:
    def __init__(self, settings, *, stt=None, llm=None, prompts: dict[str, bytes] | None = None) -> None:
        self.settings = dataclasses.replace(settings, store_transcripts=True, max_failures=2)
        self.stt, self.llm, self.tts = stt or ScriptedSTT(), llm or ScriptedLLM(), ScriptedTTS(ms_per_char=1)
        self.orch = Orchestrator(self.stt, self.llm, self.tts, stt_timeout=1, llm_timeout=1, tts_timeout=1)
        self.heard = HeardLedger()
        self.marks: list[str] = []

        async def send_media(_: bytes) -> None: ...

        async def send_mark(name: str) -> None:  # the far end plays it at once and echoes the mark
            self.marks.append(name)
            self.heard.echo(name)

        async def send_clear() -> None: ...

        self.playout = Playout(send_media, send_mark, send_clear)
        bank = prompts if prompts is not None else {"fallback": ULAW_SILENCE * 5, "trouble": ULAW_SILENCE * 5}
        self.prompts = PromptBank(audio=bank, text={k: k for k in bank})
        self.conversation = Conversation(call_id="CA1", caller="+15550100")
        self.host, self.bot = FakeHost(), FakeBot()
        self.record = CallRecord("CA1", "MZ1", store_transcripts=True)
        self.pipeline = TurnPipeline(
            call_sid="CA1", settings=self.settings, orchestrator=self.orch, prompts=self.prompts, playout=self.playout,
            metrics=Metrics(), conversation=self.conversation, bot=self.bot, heard=self.heard, record=self.record, host=self.host,
        )

    async def __aenter__(self) -> Rig:
        self._writer = asyncio.create_task(self.playout.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._writer.cancel()
        for t in self.host.helpers:
            t.cancel()


async def test_a_turn_on_words_replies_waits_until_heard_and_gives_the_floor_back(settings):
    async with Rig(settings) as r:
        await asyncio.wait_for(r.pipeline.run(1, None, "when do you open", 0.0), 5)
    assert [m["role"] for m in r.conversation.messages] == ["user", "assistant"]
    assert r.conversation.messages[1]["content"] == "We open at nine. We close at five."
    assert r.bot.calls == ["speaking", "done:1"]  # the floor goes back only after the last mark came back
    assert r.marks == ["t1s0", "t1s1"] and r.host.kept == 1 and r.host.judged == []
    assert [(line.speaker, line.text) for line in r.record.transcript] == [
        ("caller", "when do you open"), ("bot", "We open at nine. We close at five.")]
    assert r.record.turn_log[0]["outcome"] == "ok" and r.record.turn_log[0]["sentences"] == 2
    assert sorted(k for k, _ in r.host.events) == ["bot", "bot", "caller", "latency"]  # latency: at the first frame out
    assert 1 in r.record.first_audio_ms


async def test_a_speculative_turn_waits_for_its_gate_and_a_cancel_restores_the_conversation(settings):
    async with Rig(settings) as r:
        r.conversation.add_user("earlier")
        r.conversation.state["form"] = {"name": "Ann"}
        spec = Speculation(asyncio.Event(), len(r.conversation.messages), copy.deepcopy(r.conversation.state))
        task = asyncio.create_task(r.pipeline.run(2, b"\xff" * 8000, None, 0.0, spec=spec))
        for _ in range(200):  # the batch transcript is judged before anything may play
            await asyncio.sleep(0.005)
            if r.host.judged:
                break
        r.conversation.state["form"]["name"] = "changed by the speculative turn"
        assert r.host.judged == [(2, "what time do you open tomorrow")]
        await asyncio.sleep(0.05)
        assert r.marks == [] and r.playout.frames_sent == 0 and "speaking" not in r.bot.calls  # gated: nothing out
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [m["content"] for m in r.conversation.messages] == ["earlier"]
    assert r.conversation.state == {"form": {"name": "Ann"}}
    assert r.host.kept == 0 and r.record.transcript == [] and r.record.turn_log == []


async def test_an_opened_gate_lets_the_speculative_turn_speak(settings):
    async with Rig(settings) as r:
        spec = Speculation(asyncio.Event(), 0, {})
        task = asyncio.create_task(r.pipeline.run(1, None, "hello", 0.0, spec=spec))
        await asyncio.sleep(0.05)
        assert r.marks == []
        spec.gate.set()
        await asyncio.wait_for(task, 5)
    assert r.marks == ["t1s0", "t1s1"] and r.bot.calls[-1] == "done:1" and r.host.kept == 1


async def test_failures_play_the_prompt_then_the_host_gives_up(settings):
    stt = ScriptedSTT(error=StageError("stt", "timeout", "slow", provider="scripted-stt"))
    async with Rig(settings, stt=stt) as r:
        await asyncio.wait_for(r.pipeline.run(1, b"\xff" * 1600, None, 0.0), 5)
        assert r.marks == ["fallback-t1"] and r.pipeline.fallbacks == 1 and r.host.gave_up == 0
        assert r.bot.calls == ["speaking", "done:1"]
        await asyncio.wait_for(r.pipeline.run(2, b"\xff" * 1600, None, 0.0), 5)
    assert r.host.gave_up == 1 and r.pipeline.fallbacks == 1  # MAX_FAILURES=2: the second hands over
    assert [t["outcome"] for t in r.record.turn_log] == ["stt:timeout", "stt:timeout"]
    assert r.conversation.messages == []


async def test_a_failed_turn_resets_after_a_good_one(settings):
    stt = ScriptedSTT(error=StageError("stt", "timeout", "slow", provider="scripted-stt"), times=1)
    async with Rig(settings, stt=stt) as r:
        await asyncio.wait_for(r.pipeline.run(1, b"\xff" * 1600, None, 0.0), 5)
        await asyncio.wait_for(r.pipeline.run(2, b"\xff" * 1600, None, 0.0), 5)
        stt.error, stt.times = StageError("stt", "timeout", "slow", provider="scripted-stt"), 1
        await asyncio.wait_for(r.pipeline.run(3, b"\xff" * 1600, None, 0.0), 5)
    assert r.host.gave_up == 0 and r.pipeline.fallbacks == 2  # not two failures in a row


async def test_a_terminal_action_is_handed_to_the_host_after_the_reply_was_heard(settings):
    hangup = Action(kind="hangup")
    async with Rig(settings, llm=ScriptedLLM(text="Goodbye now.", actions=[hangup])) as r:
        await asyncio.wait_for(r.pipeline.run(1, None, "that's all, bye", 0.0), 5)
    assert r.host.carried == [hangup] and r.marks == ["t1s0"]
    assert "done:1" not in r.bot.calls  # the host ends the call; the floor is not given back


async def test_a_missing_prompt_is_logged_and_the_floor_still_comes_back(settings, caplog):
    async with Rig(settings, prompts={}) as r:
        await r.pipeline.speak_prompt("greeting", listen=True)
    assert r.bot.calls == ["done:None"] and r.marks == [] and "prompt missing" in caplog.text
