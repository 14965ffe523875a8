"""Voice activity on 8 kHz 20 ms frames (WebRTC's GMM model, gated by the line's
noise floor) and a turn detector on top of it: speech start, end of turn after a
configurable silence, a minimum speech length."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import webrtcvad

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from media import mulaw, voicing
from media.frames import FRAME_BYTES, FRAME_MS, RATE

FLOOR_BLOCK = 50  # frames (1 s): the noise floor is the quietest non-speech frame of the last 1-2 s
MIN_FLOOR_RMS = 20.0  # about -64 dBFS: below this a line is as good as silent


class Vad:
    """Speech / not speech for one 20 ms frame of 8 kHz mu-law.

    WebRTC's model alone calls much steady line noise speech (at 12 dB SNR, most
    seconds of noise alone hold a run of "speech" long enough to barge in). So a frame
    is speech only if the model says so AND it is ``gate_db`` louder than the line's
    noise floor: the quietest frame the model called non-speech over the last one to
    two seconds (a minimum over two 1 s blocks; a tone or a voice the model calls speech
    throughout never raises it). In the first second every frame counts, so a line
    that opens on noise is gated from its first frame. ``gate_db=0`` is the model alone.
    """

    def __init__(self, aggressiveness: int = 2, gate_db: float = 9.0) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._gate = 10 ** (gate_db / 20) if gate_db > 0 else 0.0
        self._cur = math.inf  # quietest non-speech frame of this block (RMS)
        self._prev = math.inf  # ... and of the block before
        self._n = 0
        self._pcm = (b"", b"", bytes(2 * voicing.HISTORY))  # the last three frames given (for voiced())

    @property
    def floor_rms(self) -> float:
        quietest = min(self._cur, self._prev)
        return MIN_FLOOR_RMS if quietest == math.inf else max(MIN_FLOOR_RMS, quietest)

    def is_speech_ulaw(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES:
            return False
        return self.is_speech_pcm(mulaw.decode(frame))

    def voiced(self) -> bool:
        """Whether the last frame given is voiced (``media.voicing``): periodic at a pitch
        lag over the last two frames. Computed only when asked (~10 us), so the caller asks
        only where it matters."""
        return voicing.is_voiced(b"".join(self._pcm))

    def is_speech_pcm(self, pcm16: bytes) -> bool:
        self._pcm = (self._pcm[1], self._pcm[2], pcm16)
        speech = bool(self._vad.is_speech(pcm16, RATE))
        if not self._gate:
            return speech
        rms = audioop.rms(pcm16, 2)
        if (not speech or self._prev == math.inf) and rms < self._cur:  # the first block: every frame (a cold start)
            self._cur = rms
        self._n += 1
        if self._n >= FLOOR_BLOCK:
            self._n = 0
            if self._cur < math.inf:  # a block with no non-speech frame keeps the floor it had
                self._prev, self._cur = self._cur, math.inf
        return speech and rms > self.floor_rms * self._gate


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
