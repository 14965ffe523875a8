"""The live STT's events, mixed into ``TurnController``: with a live STT attached, its
finals end the caller's turns (``speech_final``, ``UtteranceEnd`` after words, or the
answer to our ``Finalize``); a stable interim after the early silence starts the turn
speculatively; with ``TURN_COMPLETENESS`` a final whose words look unfinished is held
(prepared, gated) until the silence they need; a failed stream falls back to the local
VAD and batch STT. The controller decides; this is the part of its rules fed by the STT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.providers.stt_stream import Failed, Final, Interim, STTEvent, UtteranceEnd
from bot.turns.decisions import Decision, Phase
from bot.turns.detector import TurnEvent
from bot.wer import normalize
from media.frames import FRAME_MS

if TYPE_CHECKING:
    from bot.turns.controller import TurnOptions
    from bot.turns.detector import TurnDetector

VOICE_TAIL_S = FRAME_MS / 1000  # speech ends at the end of the last voiced frame


@dataclass(frozen=True)
class _Held:
    text: str
    speech_end: float
    stt_ms: float
    need_ms: int


def same_words(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)



class LiveTurns:
    """Mixin for ``TurnController`` (its state is set up there)."""

    if TYPE_CHECKING:  # what TurnController provides
        opts: TurnOptions
        detector: TurnDetector
        phase: Phase
        live: bool
        _spec: bool
        _spec_text: str | None
        _dtmf: str
        _quiet: int
        _voiced: int
        _voiced_at_hold: int
        _last_voice: float
        _live_text: list[str]
        _live_taken: bool
        _live_backup: bytes | None
        _held: _Held | None

        @property
        def over(self) -> bool: ...

        @property
        def bot_active(self) -> bool: ...

        def _need_for(self, text: str) -> int: ...

        def _speculate(
            self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None
        ) -> list[Decision]: ...

        def _confirm(self, stt_ms: float | None = None) -> list[Decision]: ...

        def _cancel_speculation(self) -> list[Decision]: ...

        def _start_turn(
            self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None
        ) -> list[Decision]: ...

        def _text_turn(self, text: str, speech_end: float, stt_ms: float | None = None) -> list[Decision]: ...

    def stt_attached(self) -> None:
        if not self.over:
            self.live = True
            self._live_text, self._live_taken = [], False

    def on_stt(self, ev: STTEvent, t: float) -> list[Decision]:
        if not self.live:
            return []
        if isinstance(ev, Final):
            if ev.text:
                self._live_text.append(ev.text)
            if (ev.speech_final or ev.from_finalize) and self._live_text:
                return self._live_end(t)
        elif isinstance(ev, UtteranceEnd):
            if self._live_text:
                return self._live_end(t)
        elif isinstance(ev, Interim):
            if ev.text:
                return self._live_interim(" ".join([*self._live_text, ev.text]).strip())
        elif isinstance(ev, Failed):
            return self._live_failed()
        return []

    def _live_end(self, t: float) -> list[Decision]:
        text, self._live_text = " ".join(self._live_text).strip(), []
        self._live_taken = True
        self._live_backup = None
        if self.over:
            return []
        speech_end = min(self._last_voice + VOICE_TAIL_S, t)
        stt_ms = (t - speech_end) * 1000
        if self.opts.completeness and self.phase is Phase.LISTENING and not self._dtmf:
            need_ms = self._need_for(text)
            if self._quiet * FRAME_MS < need_ms:
                return self._hold(_Held(text, speech_end, stt_ms, need_ms))
        if self._spec and self._spec_text is not None and same_words(self._spec_text, text):
            confirmed = self._confirm(stt_ms)
            if confirmed:
                return confirmed
        return self._cancel_speculation() + self._text_turn(text, speech_end, stt_ms)

    def _hold(self, held: _Held) -> list[Decision]:
        """The words look unfinished: prepare the reply (gated) but release it only after
        ``held.need_ms`` of silence; speech before then cancels it. The LLM starts once
        the silence is within ``spec_lead_ms`` of that (at once for most words): a caller
        who goes on before then costs no request."""
        self._held, self._voiced_at_hold = held, self._voiced
        if self._spec and self._spec_text is not None and same_words(self._spec_text, held.text):
            return []
        out = self._cancel_speculation()
        return out + self._prepare_held() if self._spec_due(held.need_ms) else out

    def _tick_held(self, ev: TurnEvent | None, speech: bool) -> list[Decision]:
        """One inbound frame while a live turn is held for more silence."""
        held = self._held
        assert held is not None
        if ev in (TurnEvent.SPEECH_START, TurnEvent.RESUMED):
            return self._resume_held()  # the caller goes on: the prepared reply was never sent
        if speech:
            if (self._voiced - self._voiced_at_hold) * FRAME_MS >= self.opts.barge_in_ms:
                return self._resume_held()  # speech again inside the same local utterance (a pause shorter than the early silence)
            return []
        if self._quiet * FRAME_MS >= held.need_ms:
            return self._release_held()
        if not self._spec and self._spec_due(held.need_ms):
            return self._prepare_held()
        return []

    def _spec_due(self, need_ms: int) -> bool:
        """Is a reply that may play after ``need_ms`` of silence worth starting now?"""
        return self._quiet * FRAME_MS + self.opts.spec_lead_ms >= need_ms

    def _prepare_held(self) -> list[Decision]:
        held = self._held
        assert held is not None
        return self._speculate(held.speech_end, text=held.text, stt_ms=held.stt_ms)

    def _release_held(self) -> list[Decision]:
        held, self._held = self._held, None
        if held is None or self.over:
            return []
        if self._spec and self._spec_text is not None and same_words(self._spec_text, held.text):
            confirmed = self._confirm(held.stt_ms)
            if confirmed:
                return confirmed
        return self._cancel_speculation() + self._text_turn(held.text, held.speech_end, held.stt_ms)

    def _resume_held(self) -> list[Decision]:
        """Speech again before the held turn's silence: its words start the turn that goes on."""
        held, self._held = self._held, None
        if held is not None:
            self._live_text.insert(0, held.text)
        return self._cancel_speculation()

    def _live_interim(self, text: str) -> list[Decision]:
        """A stable interim after the early silence: start the turn on it, gated."""
        if not self.opts.speculative_llm or not self.detector.maybe_ended or self.over or self._held is not None:
            return []
        out: list[Decision] = []
        if self._spec:
            if self._spec_text is not None and same_words(self._spec_text, text):
                return []
            out += self._cancel_speculation()
        if self.opts.completeness and not self._spec_due(self._need_for(text)):
            return out  # words that need a long silence: the final (held) starts the reply in time
        return out + self._speculate(self._last_voice + VOICE_TAIL_S, text=text)

    def _live_failed(self) -> list[Decision]:
        """The live STT is gone for good: local VAD turns and batch STT from now on;
        a turn it had not closed yet runs on the local audio."""
        self.live = False
        if self._held is not None:
            return self._release_held()
        backup, self._live_backup = self._live_backup, None
        if backup and not self.over and not self.bot_active:
            return self._start_turn(self._last_voice + VOICE_TAIL_S, audio=backup)
        return []
