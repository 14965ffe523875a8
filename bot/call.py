"""One phone call: carries out what the turn controller decides, and runs the turns.

Who has the floor is decided in one place, ``bot.turns.TurnController`` (no I/O): the
session feeds it each inbound 20 ms frame with the VAD's verdict, the live STT's events
and DTMF digits, and carries out the decisions it returns (barge in, start a turn, a
speculative one, confirm or cancel it, reprompt, end the call). It reports back what the
bot's side did (first audio out, a reply heard, last words started, ended). The call's
length and a stream gone quiet (no media) are on the wall clock. Each caller turn is one
task; barge-in cancels it, clears the carrier's buffer, and keeps in the history only the
sentences whose marks came back (what the caller actually heard).

The session is the call's state machine (its state is the controller's phase) and owns
the parts it composes, each an object with an explicit interface: what one turn does
(transcribe, respond, speak, behind a gate while speculative; and the prompts) is
``bot.turn_pipeline.TurnPipeline``, which reaches the session only through
``TurnHost``; what the dialogue asks for (messages, transfer, hang-up) is
``bot.call_actions.CallActions``; the turn task and the helpers are
``bot.call_tasks.CallTasks`` (spawned in the call's task group, ``bot.run_call``); what
the caller heard is ``bot.heard.HeardLedger``; the record is ``bot.call_record.CallRecord``;
the live STT stream is ``bot.call_live.LiveInput``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from bot.call_actions import CallActions
from bot.call_live import LiveInput
from bot.call_record import CallRecord
from bot.call_tasks import CallTasks, Spawn
from bot.clock import now as loop_time
from bot.control import CallControl
from bot.conversation import Action, Conversation
from bot.heard import HeardLedger
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.playout import Playout
from bot.profile import Profile, cached_profile
from bot.prompts import PromptBank
from bot.providers.stt_stream import STTEvent, STTStream
from bot.settings import Settings
from bot.store.api import Store, TranscriptLine, Transfer
from bot.store.saver import MessageSaver
from bot.turn_pipeline import Speculation, TurnPipeline
from bot.turns import (
    BargeIn,
    CancelSpeculative,
    ConfirmSpeculative,
    Decision,
    EndCall,
    FinalizeSTT,
    Phase,
    Reprompt,
    StartSpeculative,
    StartTurn,
    TurnController,
    TurnOptions,
)
from media.vad import Vad

log = logging.getLogger("bot.call")


class CallSession:
    def __init__(
        self,
        *,
        call_sid: str,
        stream_sid: str,
        caller: str,
        settings: Settings,
        orchestrator: Orchestrator,
        prompts: PromptBank,
        playout: Playout,
        control: CallControl,
        metrics: Metrics,
        spawn: Spawn,
        transfer_number: str | None = None,
        store: Store,
        saver: MessageSaver | None = None,
        profile: Profile | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.call_sid, self.stream_sid = call_sid, stream_sid
        self.settings, self.playout, self.control, self.metrics = settings, playout, control, metrics
        self.transfer_number = settings.transfer_number if transfer_number is None else transfer_number
        self.profile = profile or cached_profile(settings.business_file)
        self.actions = CallActions(
            call_sid=call_sid, caller=caller, profile=self.profile,
            saver=saver or MessageSaver(store),  # the app's (it outlives the call); a call's own in tests
            save_wait_s=settings.message_save_wait_s, transfer_number=self.transfer_number, clock=clock,
        )
        self.conversation: Conversation = self.actions.conversation
        self.observer: Callable[[str, dict[str, Any]], None] | None = None  # gets notify()'s events
        self.ended = asyncio.Event()
        self.vad = Vad(settings.vad_aggressiveness)
        self.c = TurnController(TurnOptions.from_settings(settings, transfer_number=self.transfer_number), t0=loop_time())
        self.c.on_phase = self._on_phase
        self.tasks = CallTasks(spawn, call_sid=call_sid, metrics=metrics, crashed=self.c.turn_crashed)
        self.heard = HeardLedger(loop_time)
        self.record = CallRecord(call_sid, stream_sid, store_transcripts=settings.store_transcripts)
        self.pipeline = TurnPipeline(
            call_sid=call_sid, settings=settings, orchestrator=orchestrator, prompts=prompts, playout=playout, metrics=metrics,
            conversation=self.conversation, bot=self.c, heard=self.heard, record=self.record, host=self,
        )
        self.live = LiveInput(call_sid=call_sid, metrics=metrics, tasks=self.tasks, on_event=self._on_stt)
        self._settling: asyncio.Task[Any] | None = None  # the last barge-in's clear and cancellation
        self.barge_ins = 0
        self.transfer: Transfer | None = None  # where the call went (the number masked), for the record
        # who ended the call: bot (goodbye), transfer (transfer_failed: refused), drain, max_length, silence, failures;
        # "" until the bot ends it (then the caller hung up, or an error ended it)
        self.ended_by = ""
        self._t_start = loop_time()
        self._last_media = self._t_start
        self.end_reason: str | None = None  # why the bot ended the call on a wall-clock limit

    # --- views ------------------------------------------------------------------------
    @property
    def state(self) -> Phase:
        return self.c.phase

    @property
    def turn_no(self) -> int:
        return self.c.turn_no

    @property
    def seconds(self) -> float:
        """Since the stream started."""
        return loop_time() - self._t_start

    @property
    def over(self) -> bool:
        """Saying the last words or ended: nothing starts or interrupts any more."""
        return self.c.over

    @property
    def outcome(self) -> str:
        """What the actions made of the call: answered, message, transferred, transfer_failed, emergency."""
        return self.actions.outcome

    @property
    def fallbacks(self) -> int:
        return self.pipeline.fallbacks

    @property
    def turn_log(self) -> list[dict[str, Any]]:
        return self.record.turn_log

    @property
    def first_audio_ms(self) -> dict[int, float]:
        return self.record.first_audio_ms

    @property
    def transcript(self) -> list[TranscriptLine]:
        return self.record.transcript

    def call_outcome(self, error: bool = False) -> str:
        """How the call went, for the call-end line, metrics and the call record
        (store/api CALL_OUTCOMES): what the actions made it (message, transferred,
        transfer_failed, emergency), else failed, abandoned (the caller never spoke) or answered."""
        if error:
            return "failed"
        if self.outcome != "answered":
            return self.outcome
        if self.ended_by == "failures":
            return "failed"
        if self.c.turn_no == 0 and not self.turn_log:
            return "abandoned"
        return "answered"

    # --- what a turn asks of the session (TurnHost) ----------------------------------
    def notify(self, kind: str, **data: Any) -> None:
        """Tell the observer (the browser page): "state", "caller" (text), "bot" (a
        sentence), "prompt" (its name), "latency" (ms). An observer's bug never reaches the call."""
        if self.observer is None:
            return
        try:
            self.observer(kind, data)
        except Exception:
            log.exception("call observer failed", extra=kv(call_sid=self.call_sid, event=kind))

    def judge_words(self, n: int, text: str | None) -> None:
        self._do(self.c.on_transcript(n, text))

    def helper(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        return self.tasks.helper(coro, name)

    async def settled(self) -> None:
        settling = self._settling
        if settling is not None and not settling.done():
            await asyncio.wait({settling})

    def turn_kept(self) -> None:
        self.actions.keep_draft()

    async def carry_out(self, action: Action) -> None:
        e = self.actions.ending(action)
        await self._finish(e.prompt, transfer=e.transfer, number=e.number, by=e.by)

    async def give_up(self) -> None:
        number = self.actions.front_desk()
        await self._finish("transfer" if number else "goodbye", transfer=bool(number), number=number, by="failures")

    def _on_phase(self, phase: Phase) -> None:
        self.notify("state", state=phase.value)
        log.debug("state", extra=kv(call_sid=self.call_sid, state=phase.value))

    # --- inputs from the transport --------------------------------------------------
    def start(self) -> None:
        """The stream started: greet at once, from memory."""
        self.tasks.run(self.pipeline.speak_prompt("greeting", listen=True), name="greeting")
        self.tasks.helper(self._watch_clock(), "clock")

    def on_audio(self, frame: bytes) -> None:
        now = self._last_media = loop_time()
        if self.over:
            return
        speech = self.vad.is_speech_ulaw(frame)
        self.live.send(frame, voiced=speech)
        self._do(self.c.on_frame(frame, speech, now, self.vad.voiced))

    def on_dtmf(self, digit: str) -> None:
        if self.over:
            return
        self._do(self.c.on_dtmf(digit, loop_time(), can_transfer=bool(self.actions.front_desk())))

    def on_mark(self, name: str) -> None:
        self.heard.echo(name)

    def end_now(self, prompt: str = "goodbye", *, by: str = "drain") -> None:
        """End the call from outside (drain deadline): drop what is still queued, say
        ``prompt`` and hang up. From here on the caller cannot interrupt."""
        if not self.over:
            self.ended_by = self.ended_by or by
            self._do(self.c.end_now(prompt))

    async def close(self) -> None:
        """The stream is over: cancel whatever runs, bounded; keep a message the caller
        left half-way as incomplete."""
        if self.c.phase is not Phase.ENDED:
            self.c.ended()
        await self.tasks.cancel_turn()
        await self.actions.save_pending()
        await self.live.close()
        self.ended.set()

    # --- live STT: one event stream ----------------------------------------------------
    def attach_live(self, stream: STTStream) -> None:
        """From now on the live STT's results end the caller's turns (``bot.call_live``)."""
        if self.c.phase is Phase.ENDED:
            self.tasks.helper(stream.aclose(), "stt-close")
            return
        self.c.stt_attached()
        self.live.attach(stream)

    def _on_stt(self, ev: STTEvent) -> None:
        self._do(self.c.on_stt(ev, loop_time()))

    # --- carrying out the controller's decisions --------------------------------------------
    def _do(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, BargeIn):
                self._barge_in()
            elif isinstance(d, StartSpeculative):
                self._speculate(d)
            elif isinstance(d, ConfirmSpeculative):
                if d.stt_ms is not None:  # the live final it waited for: end of speech to transcript
                    self.metrics.stt_latency.observe(d.stt_ms / 1000)
                self._confirm()
            elif isinstance(d, CancelSpeculative):
                if self.tasks.cancel_speculation():  # the pipeline restores the conversation as it was
                    self.metrics.speculations.labels("cancelled").inc()
            elif isinstance(d, StartTurn):
                self._start_turn(d)
            elif isinstance(d, FinalizeSTT):
                self.live.finalize()
            elif isinstance(d, Reprompt):
                self.tasks.run(self.pipeline.speak_prompt("reprompt", listen=True, mark=f"reprompt-{d.n}"), name="reprompt")
            elif isinstance(d, EndCall):
                self._end_call(d)

    def _barge_in(self) -> None:
        """Caller speech over the bot: cancel the turn now (it queues nothing more), then
        clear the playout and keep in the history what the caller heard."""
        self.barge_ins += 1
        self.metrics.barge_ins.inc()
        heard, unheard = self.heard.interrupted()  # echoes of dropped audio after the clear are not "heard"
        self.record.cut_short(self.c.turn_no, heard)
        task = self.tasks.take()
        if task is not None:
            task.cancel()
        self._settling = self.tasks.helper(self._settle(task, heard, unheard, self.c.turn_no), "barge-in")

    async def _settle(self, task: asyncio.Task[Any] | None, heard: list[str], unheard: int, turn_no: int) -> None:
        await self.playout.clear()
        await self.tasks.cancelled(task)
        if heard:
            self.conversation.add_assistant(" ".join(heard))
        log.info("barge-in", extra=kv(call_sid=self.call_sid, turn=turn_no, heard_sentences=len(heard), dropped_sentences=unheard))

    def _speculate(self, d: StartSpeculative) -> None:
        """Work starts at the early silence, gated: it speaks only once confirmed."""
        spec = Speculation(asyncio.Event(), len(self.conversation.messages), copy.deepcopy(self.conversation.state))
        n = self.c.turn_no
        self.tasks.run(self.pipeline.run(n, d.audio, d.text, d.speech_end, spec=spec, stt_ms=d.stt_ms), name=f"turn-{n}", turn=n, gate=spec.gate)

    def _confirm(self) -> None:
        if not self.tasks.confirm():
            log.error("no speculative turn to confirm", extra=kv(call_sid=self.call_sid, turn=self.c.turn_no))
            self.c.turn_crashed(None)
            return
        self.metrics.speculations.labels("used").inc()

    def _start_turn(self, d: StartTurn) -> None:
        if d.stt_ms is not None:  # the live STT's final: end of speech to transcript
            self.metrics.stt_latency.observe(d.stt_ms / 1000)
        n = self.c.turn_no
        self.tasks.run(self.pipeline.run(n, d.audio, d.text, d.speech_end, stt_ms=d.stt_ms), name=f"turn-{n}", turn=n)

    def _end_call(self, d: EndCall) -> None:
        number = self.actions.front_desk() if d.transfer else ""
        if d.transfer:
            log.info("dtmf transfer", extra=kv(call_sid=self.call_sid))
        self.tasks.run(self._finish(d.prompt, transfer=d.transfer, clear=d.clear, number=number, by=d.reason, decided=True), name=f"end-{d.reason}")

    async def _finish(
        self, prompt: str | None, *, transfer: bool, clear: bool = False, number: str = "", by: str = "bot", decided: bool = False
    ) -> None:
        """Say ``prompt`` (if any), then transfer or hang up, and end the session.
        ``clear``: first drop the reply still playing. ``by``: why, for the call-end line.
        ``decided``: the controller already moved to closing (an ``EndCall``); otherwise
        (a hang-up or transfer the dialogue asked for, too many failures) it is told here."""
        if not decided:
            if self.over:
                return
            self.c.closing()
        self.ended_by = self.ended_by or by
        if clear and not self.playout.idle:
            self.heard.drop_unsent()
            await self.playout.clear()
        if prompt:  # from outside (``clear``: a drain, a limit) it goes out at once, whatever the loop's load
            await self.pipeline.speak_prompt(prompt, listen=False, mark=f"end-{prompt}", burst=clear)
        if self.c.phase is Phase.ENDED:  # the caller hung up meanwhile
            return
        number = number or self.transfer_number
        if transfer and number:
            self.transfer = self.actions.transferring(number, by)
            if not await self.control.transfer(self.call_sid, number, no_answer_s=self.profile.transfer.no_answer_s):
                self.actions.transfer_failed()  # refused by the far end: the record must not say transferred
                if self.ended_by == "transfer":
                    self.ended_by = "transfer_failed"
        else:
            await self.control.hangup(self.call_sid)
        self.c.ended()
        self.ended.set()

    # --- wall-clock limits ---------------------------------------------------------------
    async def _watch_clock(self) -> None:
        """MAX_CALL_S and MEDIA_TIMEOUT_S on the wall clock: a stream that stops sending
        media stops the frame-driven timers, so they cannot end it."""
        s = self.settings
        while not (self.ended.is_set() or self.over):
            now = loop_time()
            if now - self._t_start >= s.max_call_s:
                self._end_on_limit("max_call_length")
                return
            if now - self._last_media >= s.media_timeout_s:
                self._end_on_limit("no_media")
                return
            wake = min(self._t_start + s.max_call_s, self._last_media + s.media_timeout_s)
            await asyncio.sleep(max(0.05, min(1.0, wake - now)))

    def media_lost(self) -> None:
        """The carrier ended the call because its media stopped (before this session's own
        watchdog saw it): recorded as that watchdog would record it."""
        if not self.ended_by:
            self.end_reason, self.ended_by = "no_media", "silence"

    def _end_on_limit(self, reason: str) -> None:
        if self.over:
            return
        self.end_reason = reason
        log.info("call limit reached, ending", extra=kv(call_sid=self.call_sid, reason=reason))
        self.end_now("goodbye", by="max_length" if reason == "max_call_length" else "silence")
