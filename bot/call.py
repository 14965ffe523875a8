"""One phone call: carries out what the turn controller decides, and runs the turns.

Who has the floor is decided in one place, ``bot.turns.TurnController`` (no I/O): the
session feeds it each inbound 20 ms frame with the VAD's verdict, the live STT's events
and DTMF digits, and carries out the decisions it returns (barge in, start a turn, a
speculative one, confirm or cancel it, reprompt, end the call). It reports back what the
bot's side did (first audio out, a reply heard, last words started, ended). The call's
length and a stream gone quiet (no media) are on the wall clock. Each caller turn is one
task; barge-in cancels it, clears the carrier's buffer, and keeps in the history only the
sentences whose marks came back (what the caller actually heard). What one turn does
(transcribe, respond, speak, behind a gate while speculative) is bot/turn_pipeline.py.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime

from bot.call_actions import CallActions
from bot.clock import now as loop_time
from bot.control import CallControl
from bot.errors import UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import Orchestrator
from bot.playout import Playout
from bot.profile import Profile, cached_profile
from bot.prompts import PromptBank
from bot.providers.base import Conversation
from bot.providers.stt_stream import Failed, Reconnected, STTStream
from bot.redact import mask_number
from bot.settings import Settings
from bot.store.api import NewMessage, Store, TranscriptLine, Transfer
from bot.store.saver import MessageSaver
from bot.turn_pipeline import TurnPipeline
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

CANCEL_BOUND_S = 0.5
State = Phase  # the call's state is the controller's phase


class CallSession(CallActions, TurnPipeline):
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
        spawn: Callable[[Coroutine], asyncio.Task],
        transfer_number: str | None = None,
        store: Store,
        saver: MessageSaver | None = None,
        profile: Profile | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.call_sid, self.stream_sid = call_sid, stream_sid
        self.settings, self.orch, self.prompts = settings, orchestrator, prompts
        self.playout, self.control, self.metrics, self._spawn = playout, control, metrics, spawn
        self.transfer_number = settings.transfer_number if transfer_number is None else transfer_number
        self.profile = profile or cached_profile(settings.business_file)
        self.store = store
        self.saver = saver or MessageSaver(store)  # the app's (it outlives the call); a call's own in tests
        self._draft: NewMessage | None = None
        self._clock = clock
        self.conversation = Conversation(call_id=call_sid, caller=caller, act=self._act)
        self.outcome = "answered"  # -> "message", "transferred", "emergency" (for the call record)
        self.messages_saved = 0
        self.observer: Callable[[str, dict], None] | None = None  # gets notify()'s events
        self.ended = asyncio.Event()
        self.vad = Vad(settings.vad_aggressiveness)
        self.c = TurnController(TurnOptions.from_settings(settings, transfer_number=self.transfer_number), t0=loop_time())
        self.c.on_phase = self._on_phase
        self.stt: STTStream | None = None  # the live STT stream, when one is attached
        self._spec: tuple[asyncio.Event, asyncio.Task] | None = None  # speculative turn: (gate, task)
        self._turn_task: asyncio.Task | None = None
        self._settling: asyncio.Task | None = None  # the last barge-in's clear and cancellation
        self._failures = 0
        self._mark_text: dict[str, str] = {}  # mark name -> sentence text, for the live turn
        self._heard: list[str] = []  # sentences of the live turn the caller has heard
        self._waiters: dict[str, asyncio.Future] = {}
        self.barge_ins = 0
        self.fallbacks = 0
        self.helper_errors = 0  # spawned helpers that failed of a bug (the call went on)
        self.turn_log: list[dict] = []  # per turn: n, wall time, outcome fields (the call record)
        self.first_audio_ms: dict[int, float] = {}  # turn -> end of speech to first reply audio
        self.transcript: list[TranscriptLine] = []  # what was said, only with STORE_TRANSCRIPTS
        self._words: tuple[int, str] | None = None  # the live turn's caller words, not yet in the transcript
        self.transfer: Transfer | None = None  # where the call went (the number masked), for the record
        self.transfer_purpose = ""  # the dialogue's transfer purpose, until _finish records it
        # who ended the call: bot (goodbye), transfer, drain, max_length, silence, failures;
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
    def history(self) -> list[Phase]:
        return self.c.history

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
    def busy(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def call_outcome(self, error: bool = False) -> str:
        """How the call went, for the call-end line, metrics and the call record
        (store/api CALL_OUTCOMES): what the actions made it (message, transferred,
        emergency), else failed, abandoned (the caller never spoke) or answered."""
        if error:
            return "failed"
        if self.outcome != "answered":
            return self.outcome
        if self.ended_by == "failures":
            return "failed"
        if self.c.turn_no == 0 and not self.turn_log:
            return "abandoned"
        return "answered"

    def notify(self, kind: str, **data) -> None:
        """Tell the observer (the browser page): "state", "caller" (text), "bot" (a
        sentence), "prompt" (its name), "latency" (ms). An observer's bug never reaches the call."""
        if self.observer is None:
            return
        try:
            self.observer(kind, data)
        except Exception:
            log.exception("call observer failed", extra=kv(call_sid=self.call_sid, event=kind))

    def _on_phase(self, phase: Phase) -> None:
        self.notify("state", state=phase.value)
        log.debug("state", extra=kv(call_sid=self.call_sid, state=phase.value))

    # --- inputs from the transport --------------------------------------------------
    def start(self) -> None:
        """The stream started: greet at once, from memory."""
        self._run(self._speak_prompt("greeting", listen=True), name="greeting")
        self._helper(self._watch_clock(), "clock")

    def on_audio(self, frame: bytes) -> None:
        now = self._last_media = loop_time()
        if self.over:
            return
        speech = self.vad.is_speech_ulaw(frame)
        if self.stt is not None:
            self.stt.send(frame, voiced=speech)
        self._do(self.c.on_frame(frame, speech, now, self.vad.voiced))

    def on_dtmf(self, digit: str) -> None:
        if self.over:
            return
        self._do(self.c.on_dtmf(digit, loop_time(), can_transfer=bool(self._front_desk())))

    def on_mark(self, name: str) -> None:
        text = self._mark_text.pop(name, None)
        if text is not None:
            self._heard.append(text)
        fut = self._waiters.pop(name, None)
        if fut is not None and not fut.done():
            fut.set_result(loop_time())

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
        await self._cancel_turn()
        await self._save_pending()
        stt, self.stt = self.stt, None
        if stt is not None:
            await stt.aclose()
        self.ended.set()

    # --- live STT: one event stream ----------------------------------------------------
    def attach_live(self, stream: STTStream) -> None:
        """From now on the live STT's results end the caller's turns."""
        if self.c.phase is Phase.ENDED:
            self._helper(stream.aclose(), "stt-close")
            return
        self.stt = stream
        self.c.stt_attached()
        self._spawn(self._consume_stt(stream))

    async def _consume_stt(self, stream: STTStream) -> None:
        try:
            async for ev in stream.events():
                if isinstance(ev, Reconnected):
                    log.info("live stt reconnected", extra=kv(call_sid=self.call_sid, attempts=ev.attempts, replayed_ms=ev.replayed_ms))
                elif isinstance(ev, Failed):
                    self._live_failed(ev.error)
                self._do(self.c.on_stt(ev, loop_time()))
                if isinstance(ev, Failed):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the live path must not end the call
            log.exception("live stt consumer failed", extra=kv(call_sid=self.call_sid))
            err = StageError("stt", UPSTREAM_ERROR, "live transcription failed", provider=getattr(stream, "provider", "live"))
            self._live_failed(err)
            self._do(self.c.on_stt(Failed(err), loop_time()))

    def _live_failed(self, err: StageError) -> None:
        self.metrics.stage_errors.labels(err.stage, err.code).inc()
        log.warning("live stt failed, batch STT from now on", extra=kv(call_sid=self.call_sid, code=err.code, provider=err.provider))
        stt, self.stt = self.stt, None
        if stt is not None:
            self._helper(stt.aclose(), "stt-close")

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
                self._cancel_speculation()
            elif isinstance(d, StartTurn):
                self._start_turn(d)
            elif isinstance(d, FinalizeSTT):
                if self.stt is not None:
                    self._helper(self.stt.finalize(), "stt-finalize")
            elif isinstance(d, Reprompt):
                self._run(self._speak_prompt("reprompt", listen=True, mark=f"reprompt-{d.n}"), name="reprompt")
            elif isinstance(d, EndCall):
                self._end_call(d)

    def _barge_in(self) -> None:
        """Caller speech over the bot: cancel the turn now (it queues nothing more), then
        clear the playout and keep in the history what the caller heard."""
        self.barge_ins += 1
        self.metrics.barge_ins.inc()
        heard, self._heard = self._heard, []
        self._cut_short(self.c.turn_no, heard)
        unheard = len(self._mark_text)
        self._mark_text.clear()  # echoes of dropped audio after the clear are not "heard"
        task, self._turn_task, self._spec = self._turn_task, None, None
        if task is not None:
            task.cancel()
        self._settling = self._helper(self._settle(task, heard, unheard, self.c.turn_no), "barge-in")

    async def _settle(self, task: asyncio.Task | None, heard: list[str], unheard: int, turn_no: int) -> None:
        await self.playout.clear()
        await self._await_cancelled(task)
        if heard:
            self.conversation.add_assistant(" ".join(heard))
        log.info("barge-in", extra=kv(call_sid=self.call_sid, turn=turn_no, heard_sentences=len(heard), dropped_sentences=unheard))

    def _speculate(self, d: StartSpeculative) -> None:
        """Work starts at the early silence, gated: it speaks only once confirmed."""
        gate = asyncio.Event()
        snapshot = (len(self.conversation.messages), copy.deepcopy(self.conversation.state))
        n = self.c.turn_no
        task = self._run(
            self._turn(n, d.audio, d.text, d.speech_end, gate=gate, snapshot=snapshot, stt_ms=d.stt_ms), name=f"turn-{n}", turn=n
        )
        self._spec = (gate, task)

    def _confirm(self) -> None:
        spec, self._spec = self._spec, None
        if spec is None or spec[1] is not self._turn_task or spec[1].done():
            log.error("no speculative turn to confirm", extra=kv(call_sid=self.call_sid, turn=self.c.turn_no))
            self.c.turn_crashed(None)
            return
        spec[0].set()
        self.metrics.speculations.labels("used").inc()

    def _cancel_speculation(self) -> None:
        spec, self._spec = self._spec, None
        if spec is None:
            return
        task = spec[1]
        if task is self._turn_task:
            self._turn_task = None
        task.cancel()  # _turn restores the conversation as it was
        self.metrics.speculations.labels("cancelled").inc()

    def _start_turn(self, d: StartTurn) -> None:
        if d.stt_ms is not None:  # the live STT's final: end of speech to transcript
            self.metrics.stt_latency.observe(d.stt_ms / 1000)
        n = self.c.turn_no
        self._run(self._turn(n, d.audio, d.text, d.speech_end, stt_ms=d.stt_ms), name=f"turn-{n}", turn=n)

    def _end_call(self, d: EndCall) -> None:
        number = self._front_desk() if d.transfer else ""
        if d.transfer:
            log.info("dtmf transfer", extra=kv(call_sid=self.call_sid))
        self._run(self._finish(d.prompt, transfer=d.transfer, clear=d.clear, number=number, by=d.reason, decided=True), name=f"end-{d.reason}")

    # --- tasks ------------------------------------------------------------------------
    def _run(self, coro: Coroutine, *, name: str, turn: int | None = None) -> asyncio.Task:
        """Run ``coro`` as the call's one owned turn task, replacing any before it."""
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()
        task = self._turn_task = self._spawn(self._guarded(coro, name, turn))
        return task

    async def _guarded(self, coro: Coroutine, name: str, turn: int | None) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the call: log it, the caller has the floor again
            log.exception("turn task failed", extra=kv(call_sid=self.call_sid, task=name))
            self.helper_errors += 1
            self.metrics.stage_errors.labels("call", "bug").inc()
            self.c.turn_crashed(turn)

    def _helper(self, coro: Coroutine, name: str) -> asyncio.Task:
        """Spawn a helper (barge-in, finalize, a measurement) guarded like a turn: a bug
        in one is logged and counted, and the call goes on."""
        return self._spawn(self._guarded_helper(coro, name))

    async def _guarded_helper(self, coro: Coroutine, name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call helper failed", extra=kv(call_sid=self.call_sid, task=name))
            self.helper_errors += 1
            self.metrics.stage_errors.labels("call", "bug").inc()

    async def _cancel_turn(self) -> None:
        task, self._turn_task, self._spec = self._turn_task, None, None
        if task is not None:
            task.cancel()
        await self._await_cancelled(task)

    async def _await_cancelled(self, task: asyncio.Task | None) -> None:
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=CANCEL_BOUND_S)
        if not task.done():
            log.error("turn did not cancel in time", extra=kv(call_sid=self.call_sid))

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
            self._mark_text.clear()
            await self.playout.clear()
        if prompt:  # from outside (``clear``: a drain, a limit) it goes out at once, whatever the loop's load
            await self._speak_prompt(prompt, listen=False, mark=f"end-{prompt}", burst=clear)
        if self.c.phase is Phase.ENDED:  # the caller hung up meanwhile
            return
        number = number or self.transfer_number
        if transfer and number:
            if self.outcome != "emergency":
                self.outcome = "transferred"
            self.transfer = Transfer(self.transfer_purpose or ("failures" if by == "failures" else "front_desk"), mask_number(number))
            await self.control.transfer(self.call_sid, number, no_answer_s=self.profile.transfer.no_answer_s)
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

    def _end_on_limit(self, reason: str) -> None:
        if self.over:
            return
        self.end_reason = reason
        log.info("call limit reached, ending", extra=kv(call_sid=self.call_sid, reason=reason))
        self.end_now("goodbye", by="max_length" if reason == "max_call_length" else "silence")
