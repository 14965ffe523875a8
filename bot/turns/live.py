"""The live STT's rules, a strategy the ``TurnController`` owns: with a live STT attached, its
finals end the caller's turns (``speech_final``, ``UtteranceEnd`` after words, or the
answer to our ``Finalize``); a stable interim after the early silence starts the turn
speculatively; with ``TURN_COMPLETENESS`` a final whose words look unfinished is held
(prepared, gated) until the silence they need; a failed stream falls back to the local
VAD and batch STT. Every decision goes through the controller's ``Floor``
(``bot.turns.floor``); this object keeps only the STT's side of the turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.stt_stream import Failed, Final, Interim, STTEvent, UtteranceEnd
from bot.turns.decisions import Decision, FinalizeSTT, Phase
from bot.turns.detector import TurnEvent
from bot.turns.floor import Floor
from bot.turns.gating import WordsJudge
from bot.wer import normalize
from media.frames import FRAME_MS

VOICE_TAIL_S = FRAME_MS / 1000  # speech ends at the end of the last voiced frame


@dataclass(frozen=True)
class _Held:
    text: str
    speech_end: float
    stt_ms: float
    need_ms: int


def same_words(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)



class LiveRules:
    """The live STT's rules, a strategy of the turn controller: it works through the
    controller's ``Floor`` and keeps only its own state (the finals of the turn in
    progress, a held turn). ``judge``: with ``TURN_COMPLETENESS``, the silence some
    words need (None: a final ends the turn at once)."""

    def __init__(self, floor: Floor, *, barge_in_ms: int, spec_lead_ms: int, speculative_llm: bool, judge: WordsJudge | None = None) -> None:
        self._floor, self._judge = floor, judge
        self._barge_in_ms, self._spec_lead_ms, self._speculative_llm = barge_in_ms, spec_lead_ms, speculative_llm
        self.attached = False  # a live STT decides the end of turns
        self._text: list[str] = []  # finals of the turn in progress
        self._taken = False  # the live STT ended a turn since the local speech start
        self._backup: bytes | None = None  # local audio of a turn the live STT has not closed
        self._held: _Held | None = None  # a turn whose words look unfinished, waiting for more silence
        self._voiced_since_hold = 0  # voiced frames in a row since it was held

    @property
    def holding(self) -> bool:
        return self._held is not None

    def drop_held(self) -> None:
        self._held = None

    def speech_started(self) -> None:
        """The local VAD confirmed speech: a new utterance (the last one's audio is stale)."""
        if self.attached:
            self._taken, self._backup = False, None

    def local_end(self, audio: bytes) -> list[Decision]:
        """The local VAD's end of turn: if the live STT has not ended it, ask for the final now."""
        if self._taken:
            return []
        self._backup = audio
        return [FinalizeSTT()]

    def on_frame(self, ev: TurnEvent | None, speech: bool) -> list[Decision]:
        """One inbound frame (the detector's event for it)."""
        if self._held is None:
            return []
        self._voiced_since_hold = self._voiced_since_hold + 1 if speech else 0
        return self._tick_held(ev, speech)

    def attach(self) -> None:
        if not self._floor.over:
            self.attached = True
            self._text, self._taken = [], False

    def on_stt(self, ev: STTEvent, t: float) -> list[Decision]:
        if not self.attached:
            return []
        if isinstance(ev, Final):
            if ev.text:
                self._text.append(ev.text)
            if (ev.speech_final or ev.from_finalize) and self._text:
                return self._live_end(t)
        elif isinstance(ev, UtteranceEnd):
            if self._text:
                return self._live_end(t)
        elif isinstance(ev, Interim):
            if ev.text:
                return self._live_interim(" ".join([*self._text, ev.text]).strip())
        elif isinstance(ev, Failed):
            return self._live_failed()
        return []

    def _same_as_spec(self, text: str) -> bool:
        spec = self._floor.spec_text
        return self._floor.speculating and spec is not None and same_words(spec, text)

    def _live_end(self, t: float) -> list[Decision]:
        text, self._text = " ".join(self._text).strip(), []
        self._taken = True
        self._backup = None
        f = self._floor
        if f.over:
            return []
        speech_end = min(f.last_voice + VOICE_TAIL_S, t)
        stt_ms = (t - speech_end) * 1000
        if self._judge is not None and f.phase is Phase.LISTENING and not f.dtmf_pending:
            need_ms = self._judge.need_ms(text)
            if f.quiet_ms < need_ms:
                return self._hold(_Held(text, speech_end, stt_ms, need_ms))
        return self._end_turn(text, speech_end, stt_ms)

    def _end_turn(self, text: str, speech_end: float, stt_ms: float) -> list[Decision]:
        """Confirm the speculative turn if it started from these words, else a turn on them."""
        if self._same_as_spec(text):
            confirmed = self._floor.confirm(stt_ms)
            if confirmed:
                return confirmed
        return self._floor.cancel_speculation() + self._floor.text_turn(text, speech_end, stt_ms)

    def _hold(self, held: _Held) -> list[Decision]:
        """The words look unfinished: prepare the reply (gated) but release it only after
        ``held.need_ms`` of silence; speech before then cancels it. The LLM starts once
        the silence is within ``spec_lead_ms`` of that (at once for most words): a caller
        who goes on before then costs no request."""
        self._held, self._voiced_since_hold = held, 0
        if self._same_as_spec(held.text):
            return []
        out = self._floor.cancel_speculation()
        return out + self._prepare_held() if self._spec_due(held.need_ms) else out

    def _tick_held(self, ev: TurnEvent | None, speech: bool) -> list[Decision]:
        """One inbound frame while a live turn is held for more silence."""
        held = self._held
        assert held is not None
        if ev in (TurnEvent.SPEECH_START, TurnEvent.RESUMED):
            return self._resume_held()  # the caller goes on: the prepared reply was never sent
        if speech:
            if self._voiced_since_hold * FRAME_MS >= self._barge_in_ms:
                return self._resume_held()  # speech again inside the same local utterance (a pause shorter than the early silence)
            return []
        if self._floor.quiet_ms >= held.need_ms:
            return self._release_held()
        if not self._floor.speculating and self._spec_due(held.need_ms):
            return self._prepare_held()
        return []

    def _spec_due(self, need_ms: int) -> bool:
        """Is a reply that may play after ``need_ms`` of silence worth starting now?"""
        return self._floor.quiet_ms + self._spec_lead_ms >= need_ms

    def _prepare_held(self) -> list[Decision]:
        held = self._held
        assert held is not None
        return self._floor.speculate(held.speech_end, text=held.text, stt_ms=held.stt_ms)

    def _release_held(self) -> list[Decision]:
        held, self._held = self._held, None
        if held is None or self._floor.over:
            return []
        return self._end_turn(held.text, held.speech_end, held.stt_ms)

    def _resume_held(self) -> list[Decision]:
        """Speech again before the held turn's silence: its words start the turn that goes on."""
        held, self._held = self._held, None
        if held is not None:
            self._text.insert(0, held.text)
        return self._floor.cancel_speculation()

    def _live_interim(self, text: str) -> list[Decision]:
        """A stable interim after the early silence: start the turn on it, gated."""
        f = self._floor
        if not self._speculative_llm or not f.maybe_ended or f.over or self._held is not None:
            return []
        out: list[Decision] = []
        if f.speculating:
            if self._same_as_spec(text):
                return []
            out += f.cancel_speculation()
        if self._judge is not None and not self._spec_due(self._judge.need_ms(text)):
            return out  # words that need a long silence: the final (held) starts the reply in time
        return out + f.speculate(f.last_voice + VOICE_TAIL_S, text=text)

    def _live_failed(self) -> list[Decision]:
        """The live STT is gone for good: local VAD turns and batch STT from now on;
        a turn it had not closed yet runs on the local audio."""
        self.attached = False
        if self._held is not None:
            return self._release_held()
        backup, self._backup = self._backup, None
        f = self._floor
        if backup and not f.over and not f.bot_active:
            return f.start_turn(f.last_voice + VOICE_TAIL_S, audio=backup)
        return []
