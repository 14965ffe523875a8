"""Voice activity on 8 kHz 20 ms frames (WebRTC's GMM model, gated by the line's
noise floor). Pure audio: the turn detector built on its verdicts (speech start, end
of turn after a silence, shortest and longest turn) is ``bot.turns.detector``."""

from __future__ import annotations

import math
import warnings

import webrtcvad

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from media import mulaw, voicing
from media.frames import FRAME_BYTES, RATE

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
