"""The turn detector: per-frame speech flags (``media.vad.Vad``'s verdicts) in, turn
events out: speech start, end of turn after a configurable silence, a minimum speech
length, a longest turn, and an early silence for a speculative start. Counted in
frames, no clock; the turn controller (``bot.turns.controller``) owns one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from media.frames import FRAME_MS


class TurnEvent(Enum):
    SPEECH_START = "speech_start"  # speech confirmed (barge-in trigger)
    TURN_END = "turn_end"  # enough speech followed by enough silence
    NOISE = "noise"  # a burst too short to be a turn; discarded
    MAYBE_END = "maybe_end"  # early silence: the turn may be over (speculative start)
    RESUMED = "resumed"  # speech again after MAYBE_END: the turn was not over


@dataclass
class TurnDetector:
    """Feed per-frame speech flags, get turn events.

    ``start_ms`` of consecutive speech frames confirm speech; when ``feed`` is given a
    ``voiced`` probe (the owner does so while the bot has the floor, where a start is a
    barge-in), the run must also hold a voiced frame (``Vad.voiced``): a breath or a
    cough's hiss, however long, then never confirms, and speech that opens on an
    unvoiced consonant is confirmed at its first voiced frame. The probe is asked only
    on speech frames before the confirmation, until one says yes. After that,
    ``end_silence_ms`` of non-speech ends the turn if at least ``min_speech_ms`` of
    speech was heard, else it was noise. Audio is collected from a little before the
    confirmed start (pre-roll) so the first syllable is not clipped.
    """

    end_silence_ms: int = 700
    min_speech_ms: int = 200
    start_ms: int = 120
    preroll_ms: int = 300
    max_turn_ms: int = 30_000
    early_silence_ms: int = 0  # 0: no MAYBE_END / RESUMED events

    def __post_init__(self) -> None:
        self._early_frames = self.early_silence_ms // FRAME_MS if 0 < self.early_silence_ms < self.end_silence_ms else 0
        self._start_frames = max(1, self.start_ms // FRAME_MS)
        self._end_frames = max(1, self.end_silence_ms // FRAME_MS)
        self._preroll = max(0, self.preroll_ms // FRAME_MS)
        self._max_frames = self.max_turn_ms // FRAME_MS
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._run = 0  # consecutive speech frames (before confirmation)
        self._voice = False  # ... and whether one of them was voiced (asked of a probe)
        self._silence = 0
        self._speech_frames = 0
        self._maybe = False
        self._frames: list[bytes] = []

    def feed(self, frame: bytes, speech: bool, voiced: Callable[[], bool] | None = None) -> TurnEvent | None:
        self._frames.append(frame)
        if not self.in_speech:
            if speech:
                self._run += 1
                if voiced is not None and not self._voice:
                    self._voice = voiced()
            else:
                self._run, self._voice = 0, False
            keep = self._preroll + min(self._run, self._max_frames)  # an unvoiced run may go on over the bot: bounded
            if len(self._frames) > keep:
                del self._frames[: len(self._frames) - keep]
            if self._run >= self._start_frames and (voiced is None or self._voice):
                self.in_speech = True
                self._speech_frames = self._run
                self._silence = 0
                return TurnEvent.SPEECH_START
            return None
        if speech:
            self._speech_frames += 1
            self._silence = 0
            if self._maybe:
                self._maybe = False
                return TurnEvent.RESUMED
        else:
            self._silence += 1
            if (
                self._early_frames
                and self._silence == self._early_frames
                and self._speech_frames * FRAME_MS >= self.min_speech_ms
            ):
                self._maybe = True
                return TurnEvent.MAYBE_END
        if self._silence >= self._end_frames or len(self._frames) >= self._max_frames:
            long_enough = self._speech_frames * FRAME_MS >= self.min_speech_ms
            if long_enough:
                return TurnEvent.TURN_END
            self.reset()
            return TurnEvent.NOISE
        return None

    @property
    def maybe_ended(self) -> bool:
        """Between MAYBE_END and TURN_END/RESUMED: the caller has been silent a while."""
        return self._maybe

    def peek_audio(self) -> bytes:
        """The turn's mu-law audio so far (trailing silence trimmed to 200 ms)."""
        keep_tail = max(0, self._silence - 200 // FRAME_MS)
        frames = self._frames[: len(self._frames) - keep_tail] if keep_tail else self._frames
        return b"".join(frames)

    def take_audio(self) -> bytes:
        """``peek_audio()``, then reset for the next turn."""
        audio = self.peek_audio()
        self.reset()
        return audio
