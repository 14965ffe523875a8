"""One caller turn, an object the ``CallSession`` owns: transcribe (unless the live STT
already has the words), respond, speak; a speculative turn works behind a gate and
speaks only once the controller confirms it (cancelled, it leaves the conversation as it
was). Also what the bot says from memory (prompts) and the wait for the caller to hear
it (``bot.heard.HeardLedger``), the turn's metrics, its log line and record.

What it needs of the rest of the call is explicit: the providers, the playout, the
conversation, the ledger and the record it is given, the turn controller's bot side
(``BotSide``), and the few things only the session can do (``TurnHost``). The session
runs ``run()`` as the call's one turn task; a barge-in cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot import redact
from bot.call_record import CallRecord
from bot.clock import now as loop_time
from bot.conversation import TURN_CONFIRMED, Action, Conversation
from bot.errors import StageError
from bot.heard import HeardLedger
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import ActionRequested, AudioChunk, Orchestrator, SentenceEnd, Timings
from bot.playout import Playout
from bot.prompts import PromptBank, failure_prompt
from bot.settings import Settings
from media import mulaw

log = logging.getLogger("bot.call")


class BotSide(Protocol):
    """What the turn controller hears of the bot's side (``bot.turns.TurnController``)."""

    @property
    def turn_no(self) -> int: ...

    def bot_speaking(self) -> None: ...

    def bot_done(self, n: int | None = None) -> None: ...


class TurnHost(Protocol):
    """What only the session can do for a turn."""

    def notify(self, kind: str, **data: Any) -> None:
        """Tell the observer (the browser page) an event."""
        ...

    def judge_words(self, n: int, text: str | None) -> None:
        """A speculative turn's transcript is known (None: its STT failed): the controller judges it."""
        ...

    def helper(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a guarded side task (a measurement) in the call's task group."""
        ...

    async def settled(self) -> None:
        """Until the barge-in before this turn has cleared the playout."""
        ...

    def turn_kept(self) -> None:
        """A confirmed turn ended (however): the message in progress is kept as a draft."""
        ...

    async def carry_out(self, action: Action) -> None:
        """A terminal action (transfer, hang up), once the caller heard the reply."""
        ...

    async def give_up(self) -> None:
        """Too many failures in a row: transfer or say goodbye."""
        ...


@dataclass(frozen=True)
class Speculation:
    """A speculative turn: its gate (set when confirmed), and the conversation as it was
    (the number of messages, a copy of the state) to restore if it is cancelled."""

    gate: asyncio.Event
    messages: int
    state: dict[str, Any]


class TurnPipeline:
    def __init__(
        self,
        *,
        call_sid: str,
        settings: Settings,
        orchestrator: Orchestrator,
        prompts: PromptBank,
        playout: Playout,
        metrics: Metrics,
        conversation: Conversation,
        bot: BotSide,
        heard: HeardLedger,
        record: CallRecord,
        host: TurnHost,
    ) -> None:
        self.call_sid, self.settings, self.orch, self.prompts = call_sid, settings, orchestrator, prompts
        self.playout, self.metrics, self.conversation = playout, metrics, conversation
        self.bot, self.heard, self.record, self.host = bot, heard, record, host
        self.fallbacks = 0
        self._failures = 0  # failed turns in a row
        self._words: tuple[int, str] | None = None  # the live turn's caller words, not yet in the transcript

    async def run(
        self, n: int, audio: bytes | None, text: str | None, speech_end: float, *, spec: Speculation | None = None, stt_ms: float | None = None
    ) -> None:
        """Caller turn ``n`` on ``audio`` (to transcribe) or ``text``; ``spec``: speculative (gated)."""
        gate = spec.gate if spec is not None else None
        try:
            await self.host.settled()  # the barge-in before it: clear first
            await self._body(n, audio, text, speech_end, gate, stt_ms)
        except asyncio.CancelledError:
            if spec is not None and not spec.gate.is_set():
                del self.conversation.messages[spec.messages :]
                self.conversation.state = spec.state
            elif self._words is not None and self._words[0] == n:  # confirmed, cut before its reply was logged
                self.record.said(n, "caller", self._words[1])
            raise
        finally:
            if self._words is not None and self._words[0] == n:
                self._words = None
            if gate is None or gate.is_set():  # a confirmed turn: the message in progress as it now is
                self.host.turn_kept()

    async def _body(self, n: int, audio: bytes | None, text: str | None, speech_end: float, gate: asyncio.Event | None, stt_ms: float | None) -> None:
        TURN_CONFIRMED.set(gate)  # this task's context: side effects wait for the gate
        timings = Timings()
        if stt_ms is not None:
            timings.stages["stt"] = round(stt_ms, 1)
        self.heard.new_turn()
        reply = _Reply()
        try:
            if text is None:
                text = await self._transcribe(n, audio or b"", gate, timings)
            self._take_words(n, text)
            await self._stream_reply(n, speech_end, gate, timings, reply)
            if gate is not None and not gate.is_set():
                await gate.wait()
        except StageError as err:
            await self._turn_failed(n, err, gate, timings, text)
            return
        await self._turn_done(n, speech_end, timings, reply, text)

    async def _transcribe(self, n: int, audio: bytes, gate: asyncio.Event | None, timings: Timings) -> str:
        pcm = await asyncio.to_thread(mulaw.decode, audio) if len(audio) > 16000 else mulaw.decode(audio)
        text = await self.orch.transcribe(pcm, 8000, timings)
        self.metrics.stt_latency.observe(timings.stages.get("stt", 0) / 1000)
        if gate is not None:  # the controller judges the words before the gate opens
            self.host.judge_words(n, text)
        return text

    def _take_words(self, n: int, text: str) -> None:
        """The caller's words join the conversation (and the console; the log if opted in)."""
        self.conversation.add_user(text)
        self._words = (n, text)  # for the stored transcript, until the turn logs them
        self.host.notify("caller", turn=n, text=text)
        if self.settings.log_transcripts:
            log.info("caller said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(text)))

    async def _stream_reply(self, n: int, speech_end: float, gate: asyncio.Event | None, timings: Timings, reply: _Reply) -> None:
        """The reply's audio and marks into the playout as they come (after the gate opens)."""
        async for ev in self.orch.respond(self.conversation, mulaw=True, timings=timings):
            if gate is not None and not gate.is_set():
                await gate.wait()
            if isinstance(ev, AudioChunk):
                if not reply.turn_bytes:
                    self.bot.bot_speaking()
                    self.playout.on_first_frame = lambda: self._first_frame(n, speech_end)
                self.playout.enqueue_audio(ev.data)
                reply.turn_bytes += len(ev.data)
            elif isinstance(ev, SentenceEnd):
                reply.last_mark = f"t{n}s{ev.index}"
                reply.first_mark = reply.first_mark or (reply.last_mark, reply.turn_bytes / 8)
                self.heard.expect(reply.last_mark, ev.text)
                reply.said.append(ev.text)
                self.host.notify("bot", turn=n, text=ev.text)
                self.playout.enqueue_mark(reply.last_mark)
            elif isinstance(ev, ActionRequested):
                reply.actions.append(ev.action)

    async def _turn_failed(self, n: int, err: StageError, gate: asyncio.Event | None, timings: Timings, text: str | None) -> None:
        if gate is not None and not gate.is_set():
            if err.stage == "stt":  # no words to judge: released at the normal end of turn
                self.host.judge_words(n, None)
            await gate.wait()
        quiet = err.stage == "stt" and err.code == "empty_result"  # no speech heard: not a failure of the stage
        self.record.log_turn(n, timings, level=logging.INFO if quiet else logging.WARNING, outcome=f"{err.stage}:{err.code}", provider=err.provider)
        self._words = None
        self.record.said(n, "caller", text)
        self.metrics.stage_errors.labels(err.stage, err.code).inc()
        self.metrics.turns.labels("failed").inc()
        await self._failed(n, err.stage)

    async def _turn_done(self, n: int, speech_end: float, timings: Timings, reply: _Reply, text: str) -> None:
        """The reply is queued: metrics, the turn's log line and transcript; once heard, the
        conversation keeps it and the turn's action (if any) is carried out."""
        said, actions = reply.said, reply.actions
        self._failures = 0
        self.metrics.turns.labels("ok").inc()
        if "llm_first_token" in timings.stages:
            self.metrics.llm_ttft.observe(timings.stages["llm_first_token"] / 1000)
        if "tts_first_byte" in timings.stages:
            self.metrics.tts_ttfb.observe(timings.stages["tts_first_byte"] / 1000)
        self.metrics.observe_stages(timings.stages, {"stt": self.orch.stt, "llm": self.orch.llm, "tts": self.orch.tts})
        self.record.log_turn(n, timings, outcome="ok", sentences=len(said), actions=",".join(a.kind for a in actions) or None)
        self._words = None
        self.record.said(n, "caller", text)
        self.record.said(n, "bot", " ".join(said))
        if reply.first_mark is not None:
            self.host.helper(self._measure_mouth_to_ear(*reply.first_mark, speech_end), "mouth-to-ear")
        if reply.last_mark is not None:
            await self._wait_heard(reply.last_mark)
        self.conversation.add_assistant(" ".join(said))
        self.heard.new_turn()
        if self.settings.log_transcripts:
            log.info("bot said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(" ".join(said))))
        terminal = next((a for a in actions if a.kind in ("transfer", "hangup")), None)
        if terminal is not None:
            await self.host.carry_out(terminal)
        else:
            self.bot.bot_done(n)

    def _first_frame(self, n: int, speech_end: float) -> None:
        latency = loop_time() - speech_end
        self.record.first_audio(n, latency)
        self.metrics.turn_latency.observe(latency)
        self.host.notify("latency", turn=n, ms=round(latency * 1000))
        log.info("first audio", extra=kv(call_sid=self.call_sid, turn=n, turn_latency_ms=latency * 1000))

    async def _measure_mouth_to_ear(self, mark: str, audio_ms: float, speech_end: float) -> None:
        """The first sentence's mark comes back when the caller has heard it; minus
        that sentence's length, that is when the caller began to hear the reply."""
        heard_at = await self.heard.heard_at(mark, 30)
        if heard_at is not None:
            self.metrics.mouth_to_ear.observe(max(0.0, heard_at - audio_ms / 1000 - speech_end))

    async def _failed(self, n: int, stage: str = "stt") -> None:
        """A stage failed: the prompt for it from memory (bot/prompts.py, failure_prompt),
        then back to listening; after too many failures in a row, transfer or say goodbye."""
        self._failures += 1
        if self._failures >= self.settings.max_failures:
            log.warning("giving up after failures", extra=kv(call_sid=self.call_sid, failures=self._failures))
            await self.host.give_up()
            return
        self.fallbacks += 1
        self.metrics.fallbacks.inc()
        name = failure_prompt(stage)
        await self.speak_prompt(name if self.prompts.get(name) else "fallback", listen=True, n=n, mark=f"fallback-t{n}")

    async def speak_prompt(self, name: str, *, listen: bool, n: int | None = None, mark: str | None = None, burst: bool = False) -> None:
        """Say a prompt from memory; ``listen``: then the caller has the floor (as the
        end of turn ``n``, or of the greeting / a reprompt). ``burst``: send it all at once
        (a last word nothing may interrupt: see Playout.burst)."""
        audio = self.prompts.get(name)
        if audio:
            self.host.notify("prompt", name=name)
            self.record.said(self.bot.turn_no if n is None else n, "bot", self.prompts.text.get(name) or f"[{name}]", prompt=name)
            self.bot.bot_speaking()
            mark = mark or name
            self.heard.expect(mark)
            if burst:
                await self.playout.burst(audio, mark)
            else:
                self.playout.enqueue_audio(audio)
                self.playout.enqueue_mark(mark)
            await self._wait_heard(mark)
        else:
            log.error("prompt missing", extra=kv(call_sid=self.call_sid, prompt=name))
        if listen:
            self.bot.bot_done(n)

    async def _wait_heard(self, mark: str) -> None:
        """Until the far end echoes ``mark`` (the caller heard up to it); bounded by the
        audio still queued plus slack, in case an echo never comes."""
        bound = (self.playout.queued_ms + self.playout.ahead_ms()) / 1000 + 2.0
        if not await self.heard.wait(mark, bound):
            log.warning("mark echo missing", extra=kv(call_sid=self.call_sid, mark=mark))


@dataclass
class _Reply:
    """One turn's reply as it streams: its sentences, actions and marks."""

    said: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    last_mark: str | None = None
    first_mark: tuple[str, float] | None = None  # (name, ms of audio before it in this turn)
    turn_bytes: int = 0
