"""The VAD's noise-floor gate and the turn-start detector as the call configures them
(``TurnController(TurnOptions()).detector``: the BARGE_IN_MS default), on synthetic
signals from fixed seeds. Every assertion counts frames, never clocks."""

from __future__ import annotations

import numpy as np

from bot.settings import Settings
from bot.turns.controller import TurnController, TurnOptions
from media import frames, mulaw
from media.frames import FRAME_MS
from media.vad import TurnEvent, Vad

R = 8000
LINE_RMS = 700.0  # about -33 dBFS: the line noise of the 12 dB SNR caller corpus
START_FRAMES = TurnOptions().barge_in_ms // FRAME_MS


def ulaw(x: np.ndarray) -> bytes:
    return mulaw.encode(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


def line_noise(seconds: float, seed: int, rms: float = LINE_RMS) -> np.ndarray:
    n = int(seconds * R)
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / R)
    spec[(f < 200) | (f > 3400)] = 0  # the telephone band
    y = np.fft.irfft(spec, n)
    return y / np.sqrt(np.mean(y * y)) * rms


def voiced(seconds: float, rms: float) -> np.ndarray:
    """A vowel-like sound: a gliding 140 Hz pulse with its harmonics, syllable-modulated."""
    t = np.arange(int(seconds * R)) / R
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 3 * t)) / R
    y = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2)
    return y / np.sqrt(np.mean(y * y)) * rms


def run(x: np.ndarray, vad: Vad | None = None) -> tuple[list[bool], list[int], list[int]]:
    """Speech flags, frames with SPEECH_START, frames with TURN_END."""
    vad = vad or Vad()
    d = TurnController(TurnOptions()).detector
    flags, starts, ends = [], [], []
    for k, f in enumerate(frames.split(ulaw(x))):
        s = vad.is_speech_ulaw(f)
        flags.append(s)
        ev = d.feed(f, s)
        if ev is TurnEvent.SPEECH_START:
            starts.append(k)
        elif ev is TurnEvent.TURN_END:
            ends.append(k)
            d.take_audio()  # as the controller does
    return flags, starts, ends


def test_defaults_agree():
    assert TurnOptions().barge_in_ms == Settings.__dataclass_fields__["barge_in_ms"].default == 80


def test_line_noise_alone_never_barges_in_though_the_model_alone_does():
    x = line_noise(3.0, seed=7)
    _, starts, _ = run(x)
    assert starts == []
    _, ungated, _ = run(x, Vad(gate_db=0))  # WebRTC's model alone: noise from a cold start is "speech"
    assert ungated


def test_a_cough_in_line_noise_does_not_barge_in():
    for seed in range(5):
        x = line_noise(2.5, seed=seed)
        at = int(1.5 * R)
        n = int(0.06 * R)  # 60 ms, 20 dB over the line, sharp attack, decaying
        x[at: at + n] += line_noise(0.06, seed=100 + seed, rms=LINE_RMS * 10) * np.exp(-np.arange(n) / (n / 3))
        _, starts, _ = run(x)
        assert starts == [], seed


def test_speech_in_line_noise_barges_in_within_the_window():
    x = line_noise(2.5, seed=7)
    onset = int(1.5 * R)
    x[onset:] += voiced(1.0, LINE_RMS * 4)  # 12 dB over the line
    _, starts, _ = run(x)
    first = onset // (R * FRAME_MS // 1000)
    assert len(starts) == 1
    # the run that confirms speech ends at the START_FRAMES-th voiced frame; two frames of slack
    assert first + START_FRAMES - 1 <= starts[0] <= first + START_FRAMES + 1


def test_the_turn_ends_in_line_noise_after_speech():
    x = np.concatenate([line_noise(1.0, seed=3), voiced(1.0, LINE_RMS * 4) + line_noise(1.0, seed=4), line_noise(2.0, seed=5)])
    _, starts, ends = run(x)
    speech_end = 2 * 1000 // FRAME_MS
    assert len(starts) == 1 and len(ends) == 1
    assert speech_end <= ends[0] <= speech_end + TurnOptions().end_silence_ms // FRAME_MS + 10


def test_a_voice_the_model_calls_speech_throughout_does_not_raise_the_floor():
    x = np.concatenate([np.zeros(R // 2), voiced(5.0, 3000)])
    vad = Vad()
    flags, starts, ends = run(x, vad)
    assert starts and not ends
    assert all(flags[-200:])  # the last 4 s: still speech
    assert vad.floor_rms < 100


def test_the_floor_follows_the_line():
    vad = Vad()
    for f in frames.split(ulaw(line_noise(3.0, seed=9))):
        vad.is_speech_ulaw(f)
    assert LINE_RMS * 0.3 < vad.floor_rms < LINE_RMS
