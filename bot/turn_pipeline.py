"""One caller turn, mixed into ``CallSession``: transcribe (unless the live STT already
has the words), respond, speak; a speculative turn works behind a gate and speaks only
once the controller confirms it (cancelled, it leaves the conversation as it was). Also
what the bot says from memory (prompts) and the wait for the caller to hear it (the
carrier's mark echoes), the turn's metrics and its log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import replace

from bot import redact
from bot.clock import now as loop_time
from bot.errors import StageError
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import ActionRequested, AudioChunk, Orchestrator, SentenceEnd, Timings
from bot.playout import Playout
from bot.prompts import PromptBank, failure_prompt
from bot.providers.base import TURN_CONFIRMED, Action, Conversation
from bot.settings import Settings
from bot.store.api import TranscriptLine
from bot.turns import Decision, TurnController
from media import mulaw

log = logging.getLogger("bot.call")


class TurnPipeline:
    """Mixin for ``CallSession`` (uses its settings, providers, playout, controller and
    the methods below that it defines)."""

    # what CallSession provides
    call_sid: str
    stream_sid: str
    settings: Settings
    orch: Orchestrator
    prompts: PromptBank
    playout: Playout
    metrics: Metrics
    conversation: Conversation
    c: TurnController
    _settling: asyncio.Task | None
    _failures: int
    _mark_text: dict[str, str]
    _heard: list[str]
    _waiters: dict[str, asyncio.Future]
    fallbacks: int
    turn_log: list[dict]
    first_audio_ms: dict[int, float]
    transcript: list[TranscriptLine]
    _words: tuple[int, str] | None

    def notify(self, kind: str, **data) -> None:
        raise NotImplementedError

    def _do(self, decisions: list[Decision]) -> None:
        raise NotImplementedError

    def _helper(self, coro: Coroutine, name: str) -> asyncio.Task:
        raise NotImplementedError

    def _front_desk(self) -> str:
        raise NotImplementedError

    async def _carry_out(self, action: Action) -> None:
        raise NotImplementedError

    def _keep_draft(self) -> None:
        raise NotImplementedError

    async def _finish(self, prompt: str | None, *, transfer: bool, clear: bool = False, number: str = "", by: str = "bot", decided: bool = False) -> None:
        raise NotImplementedError

    async def _turn(
        self,
        n: int,
        audio: bytes | None,
        text: str | None,
        speech_end: float,
        *,
        gate: asyncio.Event | None = None,
        snapshot: tuple[int, dict] | None = None,
        stt_ms: float | None = None,
    ) -> None:
        try:
            settling = self._settling
            if settling is not None and not settling.done():  # the barge-in before it: clear first
                await asyncio.wait({settling})
            await self._turn_body(n, audio, text, speech_end, gate, stt_ms)
        except asyncio.CancelledError:
            if gate is not None and not gate.is_set() and snapshot is not None:
                del self.conversation.messages[snapshot[0] :]
                self.conversation.state = snapshot[1]
            elif self._words is not None and self._words[0] == n:  # confirmed, cut before its reply was logged
                self._said(n, "caller", self._words[1])
            raise
        finally:
            if self._words is not None and self._words[0] == n:
                self._words = None
            if gate is None or gate.is_set():  # a confirmed turn: the message in progress as it now is
                self._keep_draft()

    async def _turn_body(
        self, n: int, audio: bytes | None, text: str | None, speech_end: float, gate: asyncio.Event | None, stt_ms: float | None
    ) -> None:
        TURN_CONFIRMED.set(gate)  # this task's context: side effects wait for the gate
        timings = Timings()
        if stt_ms is not None:
            timings.stages["stt"] = round(stt_ms, 1)
        self._mark_text.clear()
        self._heard = []
        said: list[str] = []
        actions = []
        last_mark = None
        first_mark = None  # (name, ms of audio before it in this turn)
        turn_bytes = 0
        try:
            if text is None:
                audio = audio or b""
                pcm = await asyncio.to_thread(mulaw.decode, audio) if len(audio) > 16000 else mulaw.decode(audio)
                text = await self.orch.transcribe(pcm, 8000, timings)
                self.metrics.stt_latency.observe(timings.stages.get("stt", 0) / 1000)
                if gate is not None:  # the controller judges the words before the gate opens
                    self._do(self.c.on_transcript(n, text, loop_time()))
            self.conversation.add_user(text)
            self._words = (n, text)  # for the stored transcript, until the turn logs them
            self.notify("caller", turn=n, text=text)
            if self.settings.log_transcripts:
                log.info("caller said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(text)))
            async for ev in self.orch.respond(self.conversation, mulaw=True, timings=timings):
                if gate is not None and not gate.is_set():
                    await gate.wait()
                if isinstance(ev, AudioChunk):
                    if not turn_bytes:
                        self.c.bot_speaking()
                        self.playout.on_first_frame = lambda: self._first_frame(n, speech_end)
                    self.playout.enqueue_audio(ev.data)
                    turn_bytes += len(ev.data)
                elif isinstance(ev, SentenceEnd):
                    last_mark = f"t{n}s{ev.index}"
                    first_mark = first_mark or (last_mark, turn_bytes / 8)
                    self._mark_text[last_mark] = ev.text
                    self._waiters[last_mark] = asyncio.get_running_loop().create_future()
                    said.append(ev.text)
                    self.notify("bot", turn=n, text=ev.text)
                    self.playout.enqueue_mark(last_mark)
                elif isinstance(ev, ActionRequested):
                    actions.append(ev.action)
            if gate is not None and not gate.is_set():
                await gate.wait()
        except StageError as err:
            if gate is not None and not gate.is_set():
                if err.stage == "stt":  # no words to judge: released at the normal end of turn
                    self._do(self.c.on_transcript(n, None, loop_time()))
                await gate.wait()
            quiet = err.stage == "stt" and err.code == "empty_result"  # no speech heard: not a failure of the stage
            self._log_turn(n, timings, level=logging.INFO if quiet else logging.WARNING, outcome=f"{err.stage}:{err.code}", provider=err.provider)
            self._words = None
            self._said(n, "caller", text)
            self.metrics.stage_errors.labels(err.stage, err.code).inc()
            self.metrics.turns.labels("failed").inc()
            await self._failed(n, err.stage)
            return
        self._failures = 0
        self.metrics.turns.labels("ok").inc()
        if "llm_first_token" in timings.stages:
            self.metrics.llm_ttft.observe(timings.stages["llm_first_token"] / 1000)
        if "tts_first_byte" in timings.stages:
            self.metrics.tts_ttfb.observe(timings.stages["tts_first_byte"] / 1000)
        self.metrics.observe_stages(timings.stages, {"stt": self.orch.stt, "llm": self.orch.llm, "tts": self.orch.tts})
        self._log_turn(n, timings, outcome="ok", sentences=len(said), actions=",".join(a.kind for a in actions) or None)
        self._words = None
        self._said(n, "caller", text)
        self._said(n, "bot", " ".join(said))
        if first_mark is not None:
            self._helper(self._measure_mouth_to_ear(*first_mark, speech_end), "mouth-to-ear")
        if last_mark is not None:
            await self._wait_heard(last_mark)
        self.conversation.add_assistant(" ".join(said))
        self._mark_text.clear()
        self._heard = []
        if self.settings.log_transcripts:
            log.info("bot said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(" ".join(said))))
        terminal = next((a for a in actions if a.kind in ("transfer", "hangup")), None)
        if terminal is not None:
            await self._carry_out(terminal)
        else:
            self.c.bot_done(n)

    def _first_frame(self, n: int, speech_end: float) -> None:
        latency = loop_time() - speech_end
        self.first_audio_ms.setdefault(n, round(latency * 1000, 1))
        self.metrics.turn_latency.observe(latency)
        self.notify("latency", turn=n, ms=round(latency * 1000))
        log.info("first audio", extra=kv(call_sid=self.call_sid, turn=n, turn_latency_ms=latency * 1000))

    async def _measure_mouth_to_ear(self, mark: str, audio_ms: float, speech_end: float) -> None:
        """The first sentence's mark comes back when the caller has heard it; minus
        that sentence's length, that is when the caller began to hear the reply."""
        fut = self._waiters.get(mark)
        if fut is None:
            return
        try:
            heard_at = await asyncio.wait_for(asyncio.shield(fut), 30)
        except TimeoutError:
            return
        self.metrics.mouth_to_ear.observe(max(0.0, heard_at - audio_ms / 1000 - speech_end))

    async def _failed(self, n: int, stage: str = "stt") -> None:
        """A stage failed: the prompt for it from memory (bot/prompts.py, failure_prompt),
        then back to listening; after too many failures in a row, transfer or say goodbye."""
        self._failures += 1
        if self._failures >= self.settings.max_failures:
            log.warning("giving up after failures", extra=kv(call_sid=self.call_sid, failures=self._failures))
            number = self._front_desk()
            await self._finish("transfer" if number else "goodbye", transfer=bool(number), number=number, by="failures")
            return
        self.fallbacks += 1
        self.metrics.fallbacks.inc()
        name = failure_prompt(stage)
        await self._speak_prompt(name if self.prompts.get(name) else "fallback", listen=True, n=n, mark=f"fallback-t{n}")

    async def _speak_prompt(self, name: str, *, listen: bool, n: int | None = None, mark: str | None = None, burst: bool = False) -> None:
        """Say a prompt from memory; ``listen``: then the caller has the floor (as the
        end of turn ``n``, or of the greeting / a reprompt). ``burst``: send it all at once
        (a last word nothing may interrupt: see Playout.burst)."""
        audio = self.prompts.get(name)
        if audio:
            self.notify("prompt", name=name)
            self._said(self.c.turn_no if n is None else n, "bot", self.prompts.text.get(name) or f"[{name}]", prompt=name)
            self.c.bot_speaking()
            mark = mark or name
            self._waiters[mark] = asyncio.get_running_loop().create_future()
            if burst:
                await self.playout.burst(audio, mark)
            else:
                self.playout.enqueue_audio(audio)
                self.playout.enqueue_mark(mark)
            await self._wait_heard(mark)
        else:
            log.error("prompt missing", extra=kv(call_sid=self.call_sid, prompt=name))
        if listen:
            self.c.bot_done(n)

    async def _wait_heard(self, mark: str) -> None:
        """Until the far end echoes ``mark`` (the caller heard up to it); bounded by the
        audio still queued plus slack, in case an echo never comes."""
        fut = self._waiters.get(mark)
        if fut is None:
            return
        bound = (self.playout.queued_ms + self.playout.ahead_ms()) / 1000 + 2.0
        try:
            await asyncio.wait_for(asyncio.shield(fut), bound)
        except TimeoutError:
            log.warning("mark echo missing", extra=kv(call_sid=self.call_sid, mark=mark))
        finally:
            self._waiters.pop(mark, None)

    def _said(self, turn: int, speaker: str, text: str | None, prompt: str | None = None) -> None:
        """A line of the call's stored transcript (only with STORE_TRANSCRIPTS; never logged)."""
        if self.settings.store_transcripts and text:
            self.transcript.append(TranscriptLine(turn, time.time(), speaker, text, prompt))

    def _cut_short(self, n: int, heard: list[str]) -> None:
        """A barge-in on turn ``n``: its stored reply becomes what the caller heard of it, marked interrupted."""
        last = self.transcript[-1] if self.transcript else None
        if last is not None and last.turn == n and last.speaker == "bot" and last.prompt is None and not last.interrupted:
            self.transcript[-1] = replace(last, text=" ".join(heard), interrupted=True)

    def _log_turn(self, n: int, timings: Timings, level: int = logging.INFO, **fields) -> None:
        self.turn_log.append({"n": n, "at": time.time(), **fields})
        log.log(
            level,
            "turn",
            extra=kv(call_sid=self.call_sid, stream_sid=self.stream_sid, turn=n, **{f"{k}_ms": v for k, v in timings.stages.items()}, **fields),
        )
