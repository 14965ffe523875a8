"""When may the reply to a turn the local VAD ended play? The end-of-turn gate, a
strategy the turn controller owns (batch and embedded STT; a live STT has its own
rules, ``bot.turns.live``).

- ``NoGate``: at the local end of turn, at once (``TURN_COMPLETENESS=false``);
- ``CompletenessGate``: the reply (prepared at once, gated) is released only when the
  silence since the last voiced frame reaches what the words need (``WordsJudge``, by
  default ``bot.turn_completeness``); until the words are known, the longest wait.

Both speak ``TurnGate``; a gate works through the controller's ``Floor`` and never
touches its state. ``WordsJudge`` (the silence some words need) is shared with the
live STT's rules.
"""

from __future__ import annotations

from typing import Protocol

from bot.turn_completeness import Completeness, Verdict, judge, silence_ms
from bot.turns.decisions import Decision, Phase
from bot.turns.floor import Floor


class WordsJudge(Protocol):
    def need_ms(self, text: str) -> int:
        """The silence since the last voiced frame before a reply to ``text`` may play."""
        ...

    @property
    def longest_ms(self) -> int:
        """The wait while the words are not known yet."""
        ...


class CompletenessJudge:
    """``complete_ms`` (default END_SILENCE_MS) for words that look finished, longer for
    words that do not (``bot.turn_completeness``)."""

    def __init__(self, end_silence_ms: int, complete_ms: int | None = None) -> None:
        self._end_ms, self._complete_ms = end_silence_ms, complete_ms
        self.longest_ms = silence_ms(Verdict(Completeness.INCOMPLETE, "words not known yet"), end_silence_ms)

    def need_ms(self, text: str) -> int:
        verdict = judge(text)
        if verdict.state is Completeness.COMPLETE and self._complete_ms is not None:
            return self._complete_ms
        return silence_ms(verdict, self._end_ms)


class TurnGate(Protocol):
    @property
    def waiting(self) -> bool:
        """Past the local end of turn, holding a gated reply for more silence."""
        ...

    def joined(self, audio: bytes) -> bytes:
        """The audio of a turn, with what a held end before it carried."""
        ...

    def local_end(self, t: float, audio: bytes) -> list[Decision]:
        """The local VAD's end of turn at ``t`` (``audio``: the turn's)."""
        ...

    def on_transcript(self, n: int, text: str | None) -> list[Decision]:
        """Turn ``n``'s batch transcript is known (None: its STT failed)."""
        ...

    def tick(self) -> list[Decision]:
        """A quiet frame while a speculative turn runs (before the local end of turn)."""
        ...

    def settled(self) -> None:
        """The speculative turn was confirmed or cancelled (the audio carried stays)."""
        ...

    def drop(self) -> None:
        """A new turn, a barge-in, the end: forget everything."""
        ...


class NoGate:
    """The reply plays at the local end of turn (the speculative turn is confirmed, or
    a turn starts on its audio)."""

    waiting = False

    def __init__(self, floor: Floor, *, end_silence_ms: int) -> None:
        self._floor, self._end_s = floor, end_silence_ms / 1000

    def joined(self, audio: bytes) -> bytes:
        return audio

    def local_end(self, t: float, audio: bytes) -> list[Decision]:
        return self._floor.confirm() or self._floor.start_turn(t - self._end_s, audio=audio)

    def on_transcript(self, n: int, text: str | None) -> list[Decision]:  # noqa: ARG002 - TurnGate.on_transcript
        return []

    def tick(self) -> list[Decision]:
        return []

    def settled(self) -> None:
        pass

    def drop(self) -> None:
        pass


class CompletenessGate:
    """Nothing is said before the words are judged: the speculative turn (or, with no
    early silence, a gated one started at the end of the turn) reports its transcript;
    the reply is released when the silence reaches what they need. Speech before the
    release cancels it (nothing was sent: no ``clear``) and the turn that goes on starts
    with the earlier audio, so the answer covers the whole sentence."""

    def __init__(self, floor: Floor, judge: WordsJudge, *, end_silence_ms: int, max_turn_ms: int) -> None:
        self._floor, self._judge = floor, judge
        self._end_s = end_silence_ms / 1000
        self._end_ms = end_silence_ms
        self._max_bytes = max_turn_ms * 8  # 8 kHz mu-law: 8 bytes per ms
        self._need_ms: int | None = None  # the speculative turn's silence to wait (None: words not known yet)
        self._waiting = False  # the local end of turn has passed (the detector was reset)
        self._carry = b""  # ... and the audio it took

    @property
    def waiting(self) -> bool:
        return self._waiting

    def settled(self) -> None:
        self._need_ms, self._waiting = None, False

    def drop(self) -> None:
        self._carry, self._need_ms, self._waiting = b"", None, False

    def on_transcript(self, n: int, text: str | None) -> list[Decision]:
        """With completeness, a speculative turn's words set the silence it waits for;
        if the caller has been quiet that long already, it is released now."""
        f = self._floor
        if f.over or not f.speculating or n != f.turn_no:
            return []
        # no words (the STT failed): the failure is reported at the normal end of turn
        self._need_ms = self._end_ms if text is None else self._judge.need_ms(text)
        return self.tick()

    def joined(self, audio: bytes) -> bytes:
        """What came before a held end, then ``audio``, at most ``max_turn_ms`` (the newest kept)."""
        if not self._carry:
            return audio
        return (self._carry + audio)[-self._max_bytes :]

    def tick(self) -> list[Decision]:
        """Open the speculative turn's gate once the silence since the last voiced frame
        reaches what its words need (the longest wait while they are not known)."""
        need = self._judge.longest_ms if self._need_ms is None else self._need_ms
        if self._floor.quiet_ms < need:
            return []
        self._floor.close_utterance()  # released before the local end of turn: this utterance is done
        return self._floor.confirm()

    def local_end(self, t: float, audio: bytes) -> list[Decision]:
        """Answer now if the words allow, else keep the audio and wait (gated) for the
        silence they need."""
        f = self._floor
        speech_end = t - self._end_s
        capped = len(self._carry) + len(audio) >= self._max_bytes
        audio = self.joined(audio)
        if f.speculating:
            ready = self.tick()
            if ready or not f.speculating:
                return ready
            if not capped:
                self._carry, self._waiting = audio, True
                return []
            return f.confirm()  # a turn at its length limit is answered at once
        if not capped and f.phase is Phase.LISTENING:
            started = f.speculate(speech_end, audio=audio)  # no early silence ran: judge the words first
            if started:
                self._carry, self._waiting = audio, True
                return started
        return f.start_turn(speech_end, audio=audio)
