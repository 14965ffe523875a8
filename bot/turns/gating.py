"""Batch and embedded STT with ``TURN_COMPLETENESS``, mixed into ``TurnController``: the
turn ends by the local VAD, and the reply (prepared at once, gated) is released only
when the silence since the last voiced frame reaches what the words need
(``bot.turn_completeness``); until the words are known, the longest wait applies.
The controller decides; this is the part of its rules that judges the words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.turn_completeness import Completeness, judge, silence_ms
from bot.turns.decisions import Decision, Phase
from media.frames import FRAME_MS

if TYPE_CHECKING:
    from bot.turns.controller import TurnOptions
    from bot.turns.detector import TurnDetector


class CompletenessGate:
    """Mixin for ``TurnController`` (its state is set up there)."""

    if TYPE_CHECKING:  # what TurnController provides
        opts: TurnOptions
        detector: TurnDetector
        phase: Phase
        live: bool
        turn_no: int
        _spec: bool
        _quiet: int
        _need_ms: int | None
        _waiting: bool
        _carry: bytes
        _max_bytes: int
        _unknown_ms: int

        @property
        def over(self) -> bool: ...

        def _speculate(
            self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None
        ) -> list[Decision]: ...

        def _confirm(self, stt_ms: float | None = None) -> list[Decision]: ...

        def _start_turn(
            self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None
        ) -> list[Decision]: ...

    @property
    def _judging(self) -> bool:
        """Turn ends come from the local VAD and the words are judged before the bot speaks."""
        return self.opts.completeness and not self.live

    def on_transcript(self, n: int, text: str | None, t: float) -> list[Decision]:
        """Turn ``n``'s batch transcript is known (``None``: its STT failed). With
        completeness, a speculative turn's words set the silence it waits for; if the
        caller has been quiet that long already, it is released now."""
        if not self._judging or self.over or not self._spec or n != self.turn_no:
            return []
        # no words (the STT failed): the failure is reported at the normal end of turn
        self._need_ms = self.opts.end_silence_ms if text is None else self._need_for(text)
        return self._release_if_quiet()

    def _need_for(self, text: str) -> int:
        """The silence since the last voiced frame before a reply to ``text`` may play:
        ``complete_ms`` (default END_SILENCE_MS) for words that look finished, longer for
        words that do not (``bot.turn_completeness``)."""
        verdict = judge(text)
        if verdict.state is Completeness.COMPLETE and self.opts.complete_ms is not None:
            return self.opts.complete_ms
        return silence_ms(verdict, self.opts.end_silence_ms)

    def _joined(self, audio: bytes) -> bytes:
        """The audio of a turn that went on after a held end: what came before, then
        ``audio``, at most ``max_turn_ms`` (the newest kept)."""
        if not self._carry:
            return audio
        return (self._carry + audio)[-self._max_bytes :]

    def _release_if_quiet(self) -> list[Decision]:
        """Open the speculative turn's gate once the silence since the last voiced frame
        reaches what its words need (the longest wait while they are not known)."""
        need = self._unknown_ms if self._need_ms is None else self._need_ms
        if self._quiet * FRAME_MS < need:
            return []
        if self.detector.in_speech:  # released before the local end of turn: this utterance is done
            self.detector.take_audio()
        return self._confirm()

    def _local_end(self, t: float, audio: bytes) -> list[Decision]:
        """The local VAD's end of turn, with completeness: answer now if the words allow,
        else keep the audio and wait (gated) for the silence they need."""
        speech_end = t - self.opts.end_silence_ms / 1000
        capped = len(self._carry) + len(audio) >= self._max_bytes
        audio = self._joined(audio)
        if self._spec:
            ready = self._release_if_quiet()
            if ready or not self._spec:
                return ready
            if not capped:
                self._carry, self._waiting = audio, True
                return []
            return self._confirm()  # a turn at its length limit is answered at once
        if not capped and self.phase is Phase.LISTENING:
            started = self._speculate(speech_end, audio=audio)  # no early silence ran: judge the words first
            if started:
                self._carry, self._waiting = audio, True
                return started
        return self._start_turn(speech_end, audio=audio)
