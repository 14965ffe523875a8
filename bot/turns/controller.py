"""Turn-taking with no I/O: everything that changes who has the floor, in one place.

The session feeds the controller what happened, each with its time on one monotonic
clock (a frame's arrival time in a call; virtual time in tests):

- ``on_frame(frame, speech, t, voiced)``: one inbound 20 ms mu-law frame, the VAD's verdict
  and its voicing probe (``Vad.voiced``);
- ``on_stt(event, t)``: a live STT event (``bot.providers.stt_stream``);
- ``on_dtmf(digit, t)``;
- what the bot's side did: ``bot_speaking()`` (first audio of a reply or prompt out),
  ``bot_done(n)`` (turn ``n``'s reply was heard, or the greeting / a prompt ended),
  ``closing()`` (the session is saying its last words: a hang-up or transfer the
  dialogue asked for, too many failures), ``ended()``; and ``end_now()`` (drain).

Each returns the decisions (``bot.turns.decisions``) the session must carry out, in
order. The rules are today's call behaviour:

- speech for ``BARGE_IN_MS`` starts the caller's turn; over the bot (greeting,
  thinking, speaking, or a speculative turn) it is a barge-in, and then the run must
  also hold a voiced frame (the probe), so a breath or a cough does not cut the bot off;
- ``END_SILENCE_MS`` of silence after at least ``MIN_SPEECH_MS`` of speech ends the turn
  (the local VAD), unless a live STT is attached: then the engine's final decides
  (``speech_final``, ``UtteranceEnd`` after words, or the answer to our ``Finalize``,
  asked for when the local VAD heard the end first);
- at ``EARLY_TURN_MS`` of silence the turn starts speculatively (gated): on the local
  audio, or with live STT on a stable interim (``SPECULATIVE_LLM``); confirmed at the
  end of the turn if the caller said the same, cancelled if they go on;
- silence for ``REPROMPT_AFTER_S`` while listening says the reprompt, at most
  ``MAX_REPROMPTS`` times, then goodbye; DTMF digits make a text turn after ``#`` or
  1.5 s (at most ``MAX_DTMF_DIGITS`` an entry: more are dropped and counted), ``0`` first transfers (when a transfer number is set);
- with ``TURN_COMPLETENESS``, nothing is said before the words are judged
  (``bot.turn_completeness``), and the reply, prepared at once and gated, is released
  when the silence since the last voiced frame (counted in frames) reaches what they need:
  ``complete_ms`` (default ``END_SILENCE_MS``) for words that look finished, 900 or
  1400 ms for words that do not. Live STT: the words are the finals since the turn
  began; speech before the release (a speech start, or ``BARGE_IN_MS`` of voice after
  the final) cancels it and its words begin the turn that goes on. Batch and embedded
  STT (local VAD): the speculative turn (or, with no early silence, a gated one started
  at the end of the turn) reports its transcript (``on_transcript``); until then the
  longest wait applies. Speech before the release cancels it (nothing was sent: no
  ``clear``) and the turn that goes on starts with the earlier audio, so the answer
  covers the whole sentence;
- CLOSING is a real phase: from the moment the last words start, nothing the caller
  does (speech, late finals, interims, digits) starts or interrupts anything.

Two parts of these rules are strategies the controller owns, each a small object that
works through the controller's ``Floor`` (``bot.turns.floor``) and keeps only its own
state: the live STT's rules (``stt_rules``, ``bot.turns.live.LiveRules``) and the end-of-turn
gate of batch and embedded STT (``gate``, ``bot.turns.gating``: ``NoGate`` or
``CompletenessGate``); the words' judge (``bot.turns.gating.WordsJudge``) is shared by
both. Either can be passed in to swap it. The controller owns the phase, the turn count
and the speculative turn; every decision comes out through it.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.providers.stt_stream import STTEvent
from bot.turns.decisions import (
    ALLOWED,
    BargeIn,
    CancelSpeculative,
    ConfirmSpeculative,
    Decision,
    EndCall,
    IllegalPhase,
    Phase,
    Reprompt,
    StartSpeculative,
    StartTurn,
)
from bot.turns.detector import TurnDetector, TurnEvent
from bot.turns.gating import CompletenessGate, CompletenessJudge, NoGate, TurnGate
from bot.turns.live import LiveRules
from bot.turns.options import TurnOptions
from media.frames import FRAME_MS

DTMF_FLUSH_MS = 1500
MAX_DTMF_DIGITS = 20  # one entry; a phone number is at most 15 (E.164), more are dropped and counted

__all__ = ["DTMF_FLUSH_MS", "MAX_DTMF_DIGITS", "TurnController", "TurnOptions"]


class TurnController:
    """Implements ``Floor`` for its strategies. ``gate``, ``stt_rules``: built from the
    options unless given (a factory, since each works through this controller)."""

    def __init__(
        self,
        options: TurnOptions,
        *,
        t0: float = 0.0,
        gate: Callable[[TurnController], TurnGate] | None = None,
        stt_rules: Callable[[TurnController], LiveRules] | None = None,
    ) -> None:
        self.opts = options
        self.detector = TurnDetector(
            end_silence_ms=options.end_silence_ms, min_speech_ms=options.min_speech_ms,
            start_ms=options.barge_in_ms, early_silence_ms=options.early_turn_ms, max_turn_ms=options.max_turn_ms,
        )
        self.phase = Phase.GREETING
        self.history: list[Phase] = [Phase.GREETING]
        self.turn_no = 0  # the turn now running (or last run)
        self.barge_ins = 0
        self.reprompts = 0
        self._silent = 0  # listening frames with neither speech nor a turn
        self._last_voice = t0
        # counted in inbound frames, like every timer here (a stream sent faster than real time
        # keeps its meaning): frames since the last voiced one
        self._quiet = 0
        self._spec = False  # a speculative turn runs, gated
        self._spec_text: str | None = None  # what it started from (live STT interim)
        self._dtmf = ""
        self._dtmf_age = 0
        self.dtmf_dropped = 0  # digits past MAX_DTMF_DIGITS in one entry (a flood), dropped
        judge = CompletenessJudge(options.end_silence_ms, options.complete_ms) if options.completeness else None
        self.gate: TurnGate = gate(self) if gate is not None else (
            CompletenessGate(self, judge, end_silence_ms=options.end_silence_ms, max_turn_ms=options.max_turn_ms)
            if judge is not None else NoGate(self, end_silence_ms=options.end_silence_ms)
        )
        self.stt_rules = stt_rules(self) if stt_rules is not None else LiveRules(
            self, barge_in_ms=options.barge_in_ms, spec_lead_ms=options.spec_lead_ms,
            speculative_llm=options.speculative_llm, judge=judge,
        )
        self.on_phase: Callable[[Phase], None] | None = None  # told of every phase change (the session's observer)

    # ------------------------------------------------------------------ state
    def _set(self, new: Phase) -> None:
        if new is self.phase:
            return
        if new not in ALLOWED[self.phase]:
            raise IllegalPhase(f"{self.phase.value} -> {new.value}")
        self.phase = new
        self.history.append(new)
        if self.on_phase is not None:
            self.on_phase(new)

    @property
    def over(self) -> bool:
        """Closing or ended: nothing starts or interrupts any more."""
        return self.phase in (Phase.CLOSING, Phase.ENDED)

    @property
    def bot_active(self) -> bool:
        """The bot holds (or is about to take) the floor: caller speech is a barge-in."""
        return self.phase in (Phase.GREETING, Phase.THINKING, Phase.SPEAKING) or self._spec

    @property
    def speculating(self) -> bool:
        return self._spec

    @property
    def live(self) -> bool:
        """A live STT decides the end of turns."""
        return self.stt_rules.attached

    @property
    def holding(self) -> bool:
        """A live turn whose words look unfinished waits for more silence."""
        return self.stt_rules.holding

    # the rest of the Floor its strategies see
    @property
    def spec_text(self) -> str | None:
        return self._spec_text

    @property
    def dtmf_pending(self) -> bool:
        return bool(self._dtmf)

    @property
    def quiet_ms(self) -> int:
        return self._quiet * FRAME_MS

    @property
    def last_voice(self) -> float:
        return self._last_voice

    @property
    def maybe_ended(self) -> bool:
        return self.detector.maybe_ended

    def close_utterance(self) -> None:
        if self.detector.in_speech:
            self.detector.take_audio()

    # ------------------------------------------------------------------ inbound audio
    def on_frame(self, frame: bytes, speech: bool, t: float, voiced: Callable[[], bool] | None = None) -> list[Decision]:
        if self.over:
            return []
        out: list[Decision] = []
        if speech:
            self._last_voice = t
            self._quiet = 0
        else:
            self._quiet += 1
        ev = self.detector.feed(frame, speech, voiced if self.bot_active else None)  # a barge-in needs a voice
        out += self.stt_rules.on_frame(ev, speech)  # a held live turn: released, resumed or prepared
        live = self.stt_rules.attached
        if ev is TurnEvent.SPEECH_START:
            self._silent = 0
            if self.gate.waiting:  # the caller goes on after the local end of turn: the gated reply was never sent
                out += self.cancel_speculation()
            self.stt_rules.speech_started()
            if self.bot_active:
                out += self._barge_in()
        elif ev is TurnEvent.MAYBE_END:
            if not live:
                out += self.speculate(t - self.opts.early_turn_ms / 1000, audio=self.gate.joined(self.detector.peek_audio()))
        elif ev is TurnEvent.RESUMED:
            out += self.cancel_speculation()
        elif ev is TurnEvent.TURN_END:
            audio = self.detector.take_audio()
            # live: the STT's final ends it (asked for now if the local VAD heard the end first)
            out += self.stt_rules.local_end(audio) if live else self.gate.local_end(t, audio)
        elif not self.detector.in_speech:
            out += self._tick_silence()
        if self._spec and not live and not speech and ev is not TurnEvent.TURN_END:
            out += self.gate.tick()
        out += self._tick_dtmf(t)
        return out

    def on_dtmf(self, digit: str, t: float, *, can_transfer: bool | None = None) -> list[Decision]:
        """``can_transfer`` overrides the option when it depends on the hour (a front desk)."""
        if self.over:
            return []
        self._silent = 0
        if can_transfer is None:
            can_transfer = self.opts.can_transfer
        if digit == "0" and can_transfer and not self._dtmf:
            return self._end("transfer", "transfer", transfer=True)
        if digit == "#":
            return self._flush_dtmf(t)
        if len(self._dtmf) >= MAX_DTMF_DIGITS:
            self.dtmf_dropped += 1  # a keypad flood: the entry keeps its first digits, the turn is not put off
            return []
        self._dtmf += digit
        self._dtmf_age = 0
        return []

    # ------------------------------------------------------------------ the live STT, the words
    def stt_attached(self) -> None:
        """From now on the live STT's finals end the caller's turns."""
        self.stt_rules.attach()

    def on_stt(self, ev: STTEvent, t: float) -> list[Decision]:
        return self.stt_rules.on_stt(ev, t)

    def on_transcript(self, n: int, text: str | None) -> list[Decision]:
        """Turn ``n``'s batch transcript is known (``None``: its STT failed): the
        gate may release the speculative turn (with completeness)."""
        if self.stt_rules.attached:
            return []
        return self.gate.on_transcript(n, text)

    # ------------------------------------------------------------------ the bot's side
    def bot_speaking(self) -> None:
        """The first audio of a reply (or of a prompt said while listening) went out."""
        if self.phase in (Phase.THINKING, Phase.LISTENING):
            self._set(Phase.SPEAKING)

    def bot_done(self, n: int | None = None) -> None:
        """Turn ``n``'s reply was heard (or, n=None, the greeting / a prompt ended):
        the caller has the floor. A stale report of an older turn changes nothing."""
        if n is not None and n != self.turn_no:
            return
        if self.phase in (Phase.GREETING, Phase.THINKING, Phase.SPEAKING):
            self._set(Phase.LISTENING)

    def turn_crashed(self, n: int | None) -> None:
        """Turn ``n``'s task (or, n=None, a prompt's) died of a bug: the caller has the
        floor again. A speculative turn that crashed before its confirmation is dropped,
        so the end of the turn starts a fresh one instead of confirming a dead task."""
        if self.over:
            return
        if self._spec and n == self.turn_no:
            self._spec, self._spec_text = False, None
            self.gate.settled()
            return
        self.bot_done(n)

    def closing(self) -> None:
        if not self.over:
            self._set(Phase.CLOSING)
            self._spec, self._spec_text, self._dtmf = False, None, ""
            self.stt_rules.drop_held()
            self.gate.drop()

    def ended(self) -> None:
        self._set(Phase.ENDED)

    def end_now(self, prompt: str = "goodbye") -> list[Decision]:
        """From outside (the drain deadline): drop what plays, say ``prompt``, hang up."""
        if self.over:
            return []
        return self._end("drain", prompt, clear=True)

    # ------------------------------------------------------------------ the rules
    def _barge_in(self) -> list[Decision]:
        self.barge_ins += 1
        self.stt_rules.drop_held()
        self.gate.drop()
        self._spec, self._spec_text = False, None  # BargeIn cancels whatever runs (rolled back)
        if self.phase in (Phase.GREETING, Phase.THINKING, Phase.SPEAKING):
            self._set(Phase.LISTENING)
        return [BargeIn()]

    def speculate(
        self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None
    ) -> list[Decision]:
        if self.phase is not Phase.LISTENING or self._spec or self._dtmf:
            return []  # the normal path at the end of the turn handles it
        self.turn_no += 1
        self._spec, self._spec_text = True, text
        return [StartSpeculative(speech_end=speech_end, audio=audio, text=text, stt_ms=stt_ms)]

    def confirm(self, stt_ms: float | None = None) -> list[Decision]:
        """At the end of the turn: let the speculative turn speak. [] when there is none
        still valid, so the caller starts a turn."""
        spec, self._spec, self._spec_text = self._spec, False, None
        self.gate.settled()
        if not spec or self.phase is not Phase.LISTENING:
            return []
        self.gate.drop()
        self.reprompts = 0
        self._set(Phase.THINKING)
        return [ConfirmSpeculative(stt_ms=stt_ms)]

    def cancel_speculation(self) -> list[Decision]:
        spec, self._spec, self._spec_text = self._spec, False, None
        self.gate.settled()  # the audio carried stays: the turn goes on
        if not spec:
            return []
        self.turn_no -= 1
        return [CancelSpeculative()]

    def start_turn(self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None) -> list[Decision]:
        if self.over:
            return []
        self._set(Phase.THINKING)
        self.stt_rules.drop_held()
        self.gate.drop()
        self.turn_no += 1
        self.reprompts = 0
        return [StartTurn(speech_end=speech_end, audio=audio, text=text, stt_ms=stt_ms)]

    def text_turn(self, text: str, speech_end: float, stt_ms: float | None = None) -> list[Decision]:
        out = self._barge_in() if self.bot_active else []
        return out + self.start_turn(speech_end, text=text, stt_ms=stt_ms)

    def _end(self, reason: str, prompt: str | None, *, transfer: bool = False, clear: bool = False) -> list[Decision]:
        self.closing()
        return [EndCall(reason=reason, prompt=prompt, transfer=transfer, clear=clear)]

    def _tick_silence(self) -> list[Decision]:
        if self.phase is not Phase.LISTENING or self._spec or self._dtmf:
            self._silent = 0
            return []
        self._silent += 1
        if self._silent * FRAME_MS < self.opts.reprompt_after_s * 1000:
            return []
        self._silent = 0
        if self.reprompts >= self.opts.max_reprompts:
            return self._end("silence", "goodbye")
        self.reprompts += 1
        self._set(Phase.SPEAKING)
        return [Reprompt(self.reprompts)]

    def _tick_dtmf(self, t: float) -> list[Decision]:
        if not self._dtmf:
            return []
        self._dtmf_age += 1
        if self._dtmf_age * FRAME_MS < DTMF_FLUSH_MS:
            return []
        return self._flush_dtmf(t)

    def _flush_dtmf(self, t: float) -> list[Decision]:
        digits, self._dtmf = self._dtmf, ""
        if not digits:
            return []
        return self.text_turn(f"DTMF {digits}", t)
