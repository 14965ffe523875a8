"""One phone call: an explicit state machine that owns its turn tasks.

Inbound 20 ms frames drive VAD, end of turn and silence timers, so those do not
drift; the call's length and a stream gone quiet (no media) are on the wall clock.
Each caller turn is one task; barge-in cancels it, clears Twilio's buffer, and
keeps in the history only the sentences whose marks Twilio echoed (what the caller
actually heard).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Coroutine

from bot import redact
from bot.call_state import ALLOWED, IllegalTransition, State
from bot.control import CallControl
from bot.errors import StageError
from bot.logs import kv
from bot.metrics import Metrics
from bot.orchestrator import ActionRequested, AudioChunk, Orchestrator, SentenceEnd, Timings
from bot.playout import Playout
from bot.call_actions import CallActions
from bot.profile import Profile, cached_profile
from bot.prompts import PromptBank
from bot.providers.base import TURN_CONFIRMED, Conversation
from bot.settings import Settings
from bot.store.api import Store
from bot.turn_start import TurnStart
from media import mulaw
from media.frames import FRAME_MS
from media.vad import TurnDetector, TurnEvent, Vad

if TYPE_CHECKING:
    from bot.live_turns import LiveTurns

log = logging.getLogger("bot.call")


DTMF_FLUSH_MS = 1500
CANCEL_BOUND_S = 0.5


class CallSession(TurnStart, CallActions):
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
        profile: Profile | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.call_sid, self.stream_sid = call_sid, stream_sid
        self.settings, self.orch, self.prompts = settings, orchestrator, prompts
        self.playout, self.control, self.metrics, self._spawn = playout, control, metrics, spawn
        self.transfer_number = settings.transfer_number if transfer_number is None else transfer_number
        self.profile = profile or cached_profile(settings.business_file)
        self.store = store
        self._clock = clock
        self.conversation = Conversation(call_id=call_sid, caller=caller, act=self._act)
        self.outcome = "answered"  # -> "message", "transferred", "emergency" (for the call record)
        self.messages_saved = 0
        self.state = State.GREETING
        self.history: list[State] = [State.GREETING]
        self.ended = asyncio.Event()
        self.vad = Vad(settings.vad_aggressiveness)
        self.turns = TurnDetector(
            end_silence_ms=settings.end_silence_ms,
            min_speech_ms=settings.min_speech_ms,
            start_ms=settings.barge_in_ms,
            early_silence_ms=settings.early_turn_ms,
            max_turn_ms=int(settings.max_turn_s * 1000),  # frames are at most 20 ms each (media_stream.MAX_PAYLOAD)
        )
        self._spec: tuple[asyncio.Event, asyncio.Task] | None = None  # speculative turn: (gate, task)
        self._spec_text: str | None = None  # the transcript a speculative turn started from (live STT)
        self.live: LiveTurns | None = None  # live STT decides the end of turns when attached
        self._live_backup: bytes | None = None  # local audio of a turn the live STT has not closed yet
        self._last_voice = time.monotonic()  # last frame the VAD called speech
        self._turn_task: asyncio.Task | None = None
        self._turn_no = 0
        self._failures = 0
        self._reprompts = 0
        self._silent_frames = 0
        self._dtmf = ""
        self._dtmf_age = 0
        self._mark_text: dict[str, str] = {}  # mark name -> sentence text, for the live turn
        self._heard: list[str] = []  # sentences of the live turn the caller has heard
        self._waiters: dict[str, asyncio.Future] = {}
        self._final = False  # ending for good (drain, max length): no barge-in, no new turns
        self.barge_ins = 0
        self.fallbacks = 0
        self.turn_log: list[dict] = []  # per turn: n, wall time, outcome fields (the call record)
        self.first_audio_ms: dict[int, float] = {}  # turn -> end of speech to first reply audio
        # who ended the call: bot (goodbye), transfer, drain, max_length, silence, failures;
        # "" until the bot ends it (then the caller hung up, or an error ended it)
        self.ended_by = ""
        self._t_start = time.monotonic()
        self._last_media = self._t_start
        self.end_reason: str | None = None  # why the bot ended the call on a wall-clock limit

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
        if self._turn_no == 0 and not self.turn_log:
            return "abandoned"
        return "answered"

        self.observer: Callable[[str, dict], None] | None = None  # gets notify()'s events

    def notify(self, kind: str, **data) -> None:
        """Tell the observer (the browser page): "state", "caller" (text), "bot" (a
        sentence), "prompt" (its name), "latency" (ms). An observer's bug never reaches the call."""
        if self.observer is None:
            return
        try:
            self.observer(kind, data)
        except Exception:
            log.exception("call observer failed", extra=kv(call_sid=self.call_sid, event=kind))

    # --- state machine -----------------------------------------------------------
    def _set(self, new: State) -> None:
        if new is self.state:
            return
        if new not in ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} -> {new.value}")
        self.state = new
        self.history.append(new)
        self.notify("state", state=new.value)
        log.debug("state", extra=kv(call_sid=self.call_sid, state=new.value))

    @property
    def busy(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    # --- inputs from the media stream ---------------------------------------------
    def start(self) -> None:
        """The stream started: greet at once, from memory."""
        self._run(self._speak_prompt("greeting", then=State.LISTENING), name="greeting")
        self._spawn(self._watch_clock())

    def on_audio(self, frame: bytes) -> None:
        self._last_media = time.monotonic()
        if self.state in (State.ENDING, State.ENDED) or self._final:
            return
        if self._last_media - self._t_start >= self.settings.max_call_s:
            self._end_on_limit("max_call_length")
            return
        if self.live is not None:
            self.live.send(frame)
        speech = self.vad.is_speech_ulaw(frame)
        if speech:
            self._last_voice = time.monotonic()
        ev = self.turns.feed(frame, speech)
        if ev is TurnEvent.SPEECH_START:
            self._silent_frames = 0
            if self.live is not None:
                self.live.speech_started()
                self._live_backup = None  # a new utterance: the last one's audio is stale
            if self.busy or not self.playout.idle:
                self._spawn(self._barge_in())
        elif ev is TurnEvent.MAYBE_END:
            if self.live is None:
                self._speculate(self.turns.peek_audio(), time.monotonic() - self.settings.early_turn_ms / 1000)
        elif ev is TurnEvent.RESUMED:
            self._drop_speculation()
        elif ev is TurnEvent.TURN_END:
            audio = self.turns.take_audio()
            if self.live is not None:
                if not self.live.turn_taken:  # the local VAD heard the end first: ask for the final now
                    self._live_backup = audio
                    self._spawn(self.live.finalize())
            elif not self._confirm_speculation():
                speech_end = time.monotonic() - self.settings.end_silence_ms / 1000
                self._start_turn(audio=audio, speech_end=speech_end)
        elif not self.turns.in_speech:
            self._tick_silence()
        self._tick_dtmf()

    def on_dtmf(self, digit: str) -> None:
        if self.state in (State.ENDING, State.ENDED) or self._final:
            return
        self._silent_frames = 0
        if digit == "0" and self._front_desk() and not self._dtmf:
            log.info("dtmf transfer", extra=kv(call_sid=self.call_sid))
            self._run(self._finish("transfer", transfer=True, number=self._front_desk(), by="transfer"), name="dtmf-transfer")
            return
        if digit == "#":
            self._flush_dtmf()
            return
        self._dtmf += digit
        self._dtmf_age = 0

    def on_mark(self, name: str) -> None:
        text = self._mark_text.pop(name, None)
        if text is not None:
            self._heard.append(text)
        fut = self._waiters.pop(name, None)
        if fut is not None and not fut.done():
            fut.set_result(time.monotonic())

    def end_now(self, prompt: str = "goodbye", *, by: str = "drain") -> None:
        """End the call from outside (drain deadline): drop what is still queued, say
        ``prompt`` and hang up. From here on the caller cannot interrupt."""
        if self.state not in (State.ENDING, State.ENDED) and not self._final:
            self._final = True
            self._run(self._finish(prompt, transfer=False, clear=True, by=by), name="end-now")

    async def close(self) -> None:
        """The stream is over: cancel whatever runs, bounded; keep a message the caller
        left half-way as incomplete."""
        if self.state is not State.ENDED:
            self._set(State.ENDED)
        await self._cancel_turn()
        await self._save_pending()
        live, self.live = self.live, None
        if live is not None:
            await live.aclose()
        self.ended.set()

    # --- turns ----------------------------------------------------------------------
    def _run(self, coro: Coroutine, *, name: str) -> None:
        """Run ``coro`` as the call's one owned turn task, replacing any before it."""
        if self.busy:
            self._turn_task.cancel()
        self._turn_task = self._spawn(self._guarded(coro, name))

    async def _guarded(self, coro: Coroutine, name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the call: log it, say the fallback
            log.exception("turn task failed", extra=kv(call_sid=self.call_sid, task=name))
            if self.state not in (State.ENDING, State.ENDED):
                self._set_safe(State.LISTENING)

    def _set_safe(self, new: State) -> None:
        try:
            self._set(new)
        except IllegalTransition:
            pass

    def _start_turn(self, *, audio: bytes | None = None, text: str | None = None, speech_end: float, stt_ms: float | None = None) -> None:
        if self.state in (State.ENDING, State.ENDED):
            return
        if self.state is State.GREETING:
            self._set(State.LISTENING)
        if self.state is State.SPEAKING:
            self._set(State.LISTENING)
        self._set(State.THINKING)
        self._turn_no += 1
        self._reprompts = 0
        self._run(self._turn(self._turn_no, audio, text, speech_end, stt_ms=stt_ms), name=f"turn-{self._turn_no}")

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
            await self._turn_body(n, audio, text, speech_end, gate, stt_ms)
        except asyncio.CancelledError:
            if gate is not None and not gate.is_set() and snapshot is not None:
                del self.conversation.messages[snapshot[0] :]
                self.conversation.state = snapshot[1]
            raise

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
                pcm = await asyncio.to_thread(mulaw.decode, audio) if len(audio) > 16000 else mulaw.decode(audio)
                text = await self.orch.transcribe(pcm, 8000, timings)
                self.metrics.stt_latency.observe(timings.stages.get("stt", 0) / 1000)
            self.conversation.add_user(text)
            self.notify("caller", turn=n, text=text)
            if self.settings.log_transcripts:
                log.info("caller said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(text)))
            async for ev in self.orch.respond(self.conversation, mulaw=True, timings=timings):
                if gate is not None and not gate.is_set():
                    await gate.wait()
                if isinstance(ev, AudioChunk):
                    if self.state is State.THINKING:
                        self._set(State.SPEAKING)
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
                await gate.wait()
            quiet = err.stage == "stt" and err.code == "empty_result"  # no speech heard: not a failure of the stage
            self._log_turn(n, timings, level=logging.INFO if quiet else logging.WARNING, outcome=f"{err.stage}:{err.code}", provider=err.provider)
            self.metrics.stage_errors.labels(err.stage, err.code).inc()
            self.metrics.turns.labels("failed").inc()
            await self._failed(n)
            return
        self._failures = 0
        self.metrics.turns.labels("ok").inc()
        if "llm_first_token" in timings.stages:
            self.metrics.llm_ttft.observe(timings.stages["llm_first_token"] / 1000)
        if "tts_first_byte" in timings.stages:
            self.metrics.tts_ttfb.observe(timings.stages["tts_first_byte"] / 1000)
        self.metrics.observe_stages(timings.stages, {"stt": self.orch.stt, "llm": self.orch.llm, "tts": self.orch.tts})
        self._log_turn(n, timings, outcome="ok", sentences=len(said), actions=",".join(a.kind for a in actions) or None)
        if first_mark is not None:
            self._spawn(self._measure_mouth_to_ear(*first_mark, speech_end))
        if last_mark is not None:
            await self._wait_heard(last_mark)
        self.conversation.add_assistant(" ".join(said))
        self._mark_text.clear()
        if self.settings.log_transcripts:
            log.info("bot said", extra=kv(call_sid=self.call_sid, turn=n, text=redact.transcript(" ".join(said))))
        terminal = next((a for a in actions if a.kind in ("transfer", "hangup")), None)
        if terminal is not None:
            await self._carry_out(terminal)
        elif self.state is State.SPEAKING:
            self._set(State.LISTENING)

    def _first_frame(self, n: int, speech_end: float) -> None:
        latency = time.monotonic() - speech_end
        self.first_audio_ms.setdefault(n, round(latency * 1000, 1))
        self.metrics.turn_latency.observe(latency)
        self.notify("latency", turn=n, ms=round(latency * 1000))
        log.info("first audio", extra=kv(call_sid=self.call_sid, turn=n, turn_latency_ms=latency * 1000))

    async def _measure_mouth_to_ear(self, mark: str, audio_ms: float, speech_end: float) -> None:
        """Twilio echoes the first sentence's mark when the caller has heard it; minus
        that sentence's length, that is when the caller began to hear the reply."""
        fut = self._waiters.get(mark)
        if fut is None:
            return
        try:
            heard_at = await asyncio.wait_for(asyncio.shield(fut), 30)
        except TimeoutError:
            return
        self.metrics.mouth_to_ear.observe(max(0.0, heard_at - audio_ms / 1000 - speech_end))

    async def _failed(self, n: int) -> None:
        """A stage failed: the fallback prompt from memory, then back to listening;
        after too many failures in a row, transfer or say goodbye."""
        self._failures += 1
        if self._failures >= self.settings.max_failures:
            log.warning("giving up after failures", extra=kv(call_sid=self.call_sid, failures=self._failures))
            number = self._front_desk()
            await self._finish("transfer" if number else "goodbye", transfer=bool(number), number=number, by="failures")
            return
        self.fallbacks += 1
        self.metrics.fallbacks.inc()
        await self._speak_prompt("fallback", then=State.LISTENING, mark=f"fallback-t{n}")

    async def _speak_prompt(self, name: str, *, then: State | None, mark: str | None = None) -> None:
        audio = self.prompts.get(name)
        if audio:
            self.notify("prompt", name=name)
            if self.state in (State.THINKING, State.LISTENING):
                self._set(State.SPEAKING)
            mark = mark or name
            self._waiters[mark] = asyncio.get_running_loop().create_future()
            self.playout.enqueue_audio(audio)
            self.playout.enqueue_mark(mark)
            await self._wait_heard(mark)
        else:
            log.error("prompt missing", extra=kv(call_sid=self.call_sid, prompt=name))
        if then is not None and self.state not in (State.ENDING, State.ENDED):
            self._set(then)

    async def _wait_heard(self, mark: str) -> None:
        """Until Twilio echoes ``mark`` (the caller heard up to it); bounded by the
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

    async def _barge_in(self) -> None:
        if self.state in (State.ENDING, State.ENDED):
            return
        self.barge_ins += 1
        self.metrics.barge_ins.inc()
        turn_no = self._turn_no
        heard = list(self._heard)
        unheard = len(self._mark_text)
        self._mark_text.clear()  # echoes of dropped audio after the clear are not "heard"
        task, self._turn_task = self._turn_task, None
        if task is not None:
            task.cancel()  # first, so it queues nothing more
        await self.playout.clear()
        await self._await_cancelled(task)
        if heard and self.state is not State.GREETING:
            self.conversation.add_assistant(" ".join(heard))
        log.info("barge-in", extra=kv(call_sid=self.call_sid, turn=turn_no, heard_sentences=len(heard), dropped_sentences=unheard))
        if turn_no == self._turn_no and self.state in (State.SPEAKING, State.THINKING, State.GREETING):
            self._set(State.LISTENING)

    async def _cancel_turn(self) -> None:
        task, self._turn_task = self._turn_task, None
        if task is not None:
            task.cancel()
        await self._await_cancelled(task)

    async def _await_cancelled(self, task: asyncio.Task | None) -> None:
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=CANCEL_BOUND_S)
        if not task.done():
            log.error("turn did not cancel in time", extra=kv(call_sid=self.call_sid))

    async def _finish(self, prompt: str | None, *, transfer: bool, clear: bool = False, number: str = "", by: str = "bot") -> None:
        """Say ``prompt`` (if any), then transfer or hang up, and end the session.
        ``clear``: first drop the reply still playing. ``by``: why, for the call-end line."""
        if self.state in (State.ENDING, State.ENDED):
            return
        self.ended_by = self.ended_by or by
        if clear and not self.playout.idle:
            self._mark_text.clear()
            await self.playout.clear()
        if prompt:
            await self._speak_prompt(prompt, then=None, mark=f"end-{prompt}")
        if self.state is State.ENDED:
            return
        self._set(State.ENDING)
        number = number or self.transfer_number
        if transfer and number:
            if self.outcome != "emergency":
                self.outcome = "transferred"
            await self.control.transfer(self.call_sid, number)
        else:
            await self.control.hangup(self.call_sid)
        self._set(State.ENDED)
        self.ended.set()

    # --- wall-clock limits ---------------------------------------------------------------
    async def _watch_clock(self) -> None:
        """MAX_CALL_S and MEDIA_TIMEOUT_S on the wall clock: a stream that stops sending
        media stops the frame-driven timers below, so they cannot end it."""
        s = self.settings
        while not (self.ended.is_set() or self._final or self.state in (State.ENDING, State.ENDED)):
            now = time.monotonic()
            if now - self._t_start >= s.max_call_s:
                self._end_on_limit("max_call_length")
                return
            if now - self._last_media >= s.media_timeout_s:
                self._end_on_limit("no_media")
                return
            wake = min(self._t_start + s.max_call_s, self._last_media + s.media_timeout_s)
            await asyncio.sleep(max(0.05, min(1.0, wake - now)))

    def _end_on_limit(self, reason: str) -> None:
        if self._final or self.state in (State.ENDING, State.ENDED):
            return
        self.end_reason = reason
        log.info("call limit reached, ending", extra=kv(call_sid=self.call_sid, reason=reason))
        self.end_now("goodbye", by="max_length" if reason == "max_call_length" else "silence")

    # --- frame-driven timers ----------------------------------------------------------
    def _tick_silence(self) -> None:
        if self.state is not State.LISTENING or self.busy or self._dtmf:
            self._silent_frames = 0
            return
        self._silent_frames += 1
        if self._silent_frames * FRAME_MS < self.settings.reprompt_after_s * 1000:
            return
        self._silent_frames = 0
        if self._reprompts >= self.settings.max_reprompts:
            log.info("caller silent, hanging up", extra=kv(call_sid=self.call_sid, reprompts=self._reprompts))
            self._run(self._finish("goodbye", transfer=False, by="silence"), name="silence-goodbye")
            return
        self._reprompts += 1
        self._run(self._speak_prompt("reprompt", then=State.LISTENING, mark=f"reprompt-{self._reprompts}"), name="reprompt")

    def _tick_dtmf(self) -> None:
        if self._dtmf:
            self._dtmf_age += 1
            if self._dtmf_age * FRAME_MS >= DTMF_FLUSH_MS:
                self._flush_dtmf()

    def _flush_dtmf(self) -> None:
        digits, self._dtmf = self._dtmf, ""
        if digits:
            self._spawn(self._dtmf_turn(digits))

    async def _dtmf_turn(self, digits: str) -> None:
        if self._final:
            return
        if self.busy or not self.playout.idle:
            await self._barge_in()
        self._start_turn(text=f"DTMF {digits}", speech_end=time.monotonic())

    def _log_turn(self, n: int, timings: Timings, level: int = logging.INFO, **fields) -> None:
        self.turn_log.append({"n": n, "at": time.time(), **fields})
        log.log(
            level,
            "turn",
            extra=kv(call_sid=self.call_sid, stream_sid=self.stream_sid, turn=n, **{f"{k}_ms": v for k, v in timings.stages.items()}, **fields),
        )
