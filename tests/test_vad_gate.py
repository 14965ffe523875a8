"""The VAD's noise-floor gate, the barge-in voicing gate (``media.voicing``) and the
turn-start detector as the call configures them (``TurnController(TurnOptions()).detector``:
the BARGE_IN_MS default), on synthetic signals from fixed seeds. Every assertion counts
frames, never clocks."""

from __future__ import annotations

import numpy as np
import pytest

from bot.settings import Settings
from bot.turns import BargeIn, Phase
from bot.turns.controller import TurnController, TurnOptions
from bot.turns.detector import TurnDetector, TurnEvent
from media import frames, mulaw, voicing
from media.frames import FRAME_MS
from media.vad import Vad

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

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


def breath(seconds: float, seed: int, rms: float) -> np.ndarray:
    """Air through an open mouth: noise through three wide vocal-tract resonances,
    rising then falling (no voice drives them)."""
    n = int(seconds * R)
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / R)
    h = sum(g / (1 + ((f - fc) / (bw / 2)) ** 2) for fc, bw, g in ((600, 250, 1.0), (1500, 350, 0.5), (2600, 450, 0.3)))
    y = np.fft.irfft(spec * np.sqrt(h), n) * np.sin(np.pi * np.arange(n) / n) ** 2
    return y / np.sqrt(np.mean(y * y)) * rms


def run(x: np.ndarray, vad: Vad | None = None, *, probe: bool = True) -> tuple[list[bool], list[int], list[int]]:
    """Speech flags, frames with SPEECH_START, frames with TURN_END; with ``probe``, the
    detector asks the VAD's voicing probe, as the controller does while the bot speaks."""
    vad = vad or Vad()
    d = TurnController(TurnOptions()).detector
    flags, starts, ends = [], [], []
    for k, f in enumerate(frames.split(ulaw(x))):
        s = vad.is_speech_ulaw(f)
        flags.append(s)
        ev = d.feed(f, s, vad.voiced if probe else None)
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
    _, ungated, _ = run(x, Vad(gate_db=0), probe=False)  # WebRTC's model alone: noise from a cold start is "speech"
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


# ----------------------------------------------------------------------------- the voicing gate


def with_breath(seed: int, seconds: float = 0.4) -> np.ndarray:
    x = line_noise(2.5, seed=seed)
    at = int(1.5 * R)
    x[at: at + int(seconds * R)] += breath(seconds, seed=50 + seed, rms=LINE_RMS * 4)  # 12 dB over the line
    return x


def test_a_breath_over_the_line_barges_in_on_energy_alone_but_not_through_the_voicing_gate():
    for seed in range(5):
        x = with_breath(seed)
        _, ungated, _ = run(x, probe=False)
        assert ungated, seed  # loud and long enough for the VAD and its floor gate: only voicing tells it from speech
        _, starts, _ = run(x)
        assert starts == [], seed


def test_speech_opening_on_a_hiss_is_confirmed_at_its_first_voiced_frames():
    x = line_noise(2.5, seed=11)
    onset, vowel = int(1.4 * R), int(1.6 * R)
    x[onset:vowel] += breath(0.2, seed=12, rms=LINE_RMS * 4)[: vowel - onset]  # an "h" before the vowel
    x[vowel:] += voiced(0.9, LINE_RMS * 4)
    _, ungated, _ = run(x, probe=False)
    _, starts, _ = run(x)
    first_voiced = vowel // (R * FRAME_MS // 1000)
    assert len(starts) == 1 and ungated and ungated[0] < first_voiced  # the VAD alone confirms on the hiss
    assert first_voiced <= starts[0] <= first_voiced + START_FRAMES + 1


def test_the_probe_is_asked_only_on_speech_frames_before_the_start_and_stops_at_the_first_yes():
    x = line_noise(2.5, seed=7)
    onset = int(1.5 * R)
    x[onset:] += voiced(1.0, LINE_RMS * 4)
    vad, d, asked, answers = Vad(), TurnController(TurnOptions()).detector, [], []

    def probe() -> bool:
        asked.append(k)
        answers.append(vad.voiced())
        return answers[-1]

    flags, start = [], None
    for k, f in enumerate(frames.split(ulaw(x))):
        flags.append(vad.is_speech_ulaw(f))
        if d.feed(f, flags[-1], probe) is TurnEvent.SPEECH_START and start is None:
            start = k
    assert start is not None and asked and all(flags[k] for k in asked)
    assert max(asked) <= start and answers[-1] and answers.count(True) == 1  # not asked again once voiced


def test_an_endless_unvoiced_run_keeps_bounded_audio_and_never_starts():
    d = TurnDetector(max_turn_ms=2000, preroll_ms=300)
    events = {d.feed(b"\xff" * 160, True, lambda: False) for _ in range(1000)}
    assert events == {None} and not d.in_speech
    assert len(d.peek_audio()) <= (2000 + 300) // FRAME_MS * 160


def test_the_turn_end_does_not_depend_on_the_voicing_gate():
    x = np.concatenate([line_noise(1.0, seed=3), voiced(1.0, LINE_RMS * 4) + line_noise(1.0, seed=4), line_noise(2.0, seed=5)])
    assert run(x)[2] == run(x, probe=False)[2] != []


def controller_run(c: TurnController, x: np.ndarray, vad: Vad, asked: list[Phase]) -> list[object]:
    def probe() -> bool:
        asked.append(c.phase)
        return vad.voiced()

    out: list[object] = []
    for k, f in enumerate(frames.split(ulaw(x))):
        out += c.on_frame(f, vad.is_speech_ulaw(f), k * FRAME_MS / 1000, probe)
    return out


def test_over_the_bot_a_breath_is_no_barge_in_and_a_voice_is_one():
    c, vad, asked = TurnController(TurnOptions()), Vad(), []
    assert c.phase is Phase.GREETING  # the bot has the floor
    assert not any(isinstance(d, BargeIn) for d in controller_run(c, with_breath(1), vad, asked))
    assert c.phase is Phase.GREETING and asked and c.barge_ins == 0
    x = line_noise(2.0, seed=8)
    x[R:] += voiced(1.0, LINE_RMS * 4)
    assert sum(isinstance(d, BargeIn) for d in controller_run(c, x, vad, asked)) == 1
    assert c.phase is Phase.LISTENING


def test_while_the_caller_has_the_floor_the_probe_is_never_asked_and_changes_nothing():
    x = np.concatenate([with_breath(2), voiced(0.6, LINE_RMS * 4) + line_noise(0.6, seed=20), line_noise(1.5, seed=21)])
    runs = []
    for probe in (True, False):
        c, vad, asked = TurnController(TurnOptions()), Vad(), []
        c.bot_done()
        assert c.phase is Phase.LISTENING
        if probe:
            runs.append(controller_run(c, x, vad, asked))
        else:
            runs.append([d for k, f in enumerate(frames.split(ulaw(x))) for d in c.on_frame(f, vad.is_speech_ulaw(f), k * FRAME_MS / 1000)])
        assert asked == []
    assert runs[0] == runs[1] != []


def test_periodicity_is_high_for_a_voice_low_for_noise_and_matches_its_definition():
    v = ulaw(voiced(0.2, 3000))
    pcm = mulaw.decode(v)
    assert voicing.periodicity(pcm) > 0.8 > voicing.VOICED
    for seed in range(5):
        n = mulaw.decode(ulaw(line_noise(0.2, seed=seed) + breath(0.2, seed=seed, rms=2000)))
        assert voicing.periodicity(n) < voicing.VOICED, seed
    x = np.frombuffer(pcm, "<i2").astype(np.float64)[-voicing.HISTORY:]
    w = x[voicing.LAG_MAX:]
    direct = max(
        float(np.dot(w, x[voicing.LAG_MAX - k: len(x) - k]) / np.sqrt(np.dot(w, w) * np.dot(x[voicing.LAG_MAX - k: len(x) - k], x[voicing.LAG_MAX - k: len(x) - k])))
        for k in range(voicing.LAG_MIN, voicing.LAG_MAX + 1)
    )
    assert abs(voicing.periodicity(pcm) - direct) < 1e-9
    assert voicing.periodicity(bytes(2 * voicing.HISTORY)) == 0.0
    with pytest.raises(ValueError):
        voicing.periodicity(bytes(2 * voicing.HISTORY - 2))


async def test_a_breath_over_the_bot_on_a_real_call_is_no_barge_in_and_the_words_after_it_are(aiohttp_server, settings, tmp_path):
    """Over the websocket, as the session wires the VAD's probe: the caller breathes
    into the phone 1.5 s into a long reply, then speaks; the clear follows the words."""
    from bot.carriers.twilio.simulator import simulate_call
    from bot.simulator import load_ulaw
    from media import wav
    from tests.fakes.scripted import ScriptedLLM, ScriptedTTS
    from tests.test_calls import ADDRESS, OPEN, TOKEN, phone_settings, serve, url

    long = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 9))
    server, _p, _app = await serve(aiohttp_server, phone_settings(settings), llm=ScriptedLLM(text=long), tts=ScriptedTTS(ms_per_char=25))
    words = np.frombuffer(mulaw.decode(load_ulaw(ADDRESS)), "<i2").astype(np.float64)
    gap = 0.6
    x = np.concatenate([breath(0.4, seed=3, rms=2000), np.zeros(int(gap * R)), words])  # the breath about -24 dBFS
    path = tmp_path / "breath_then_address.wav"
    path.write_bytes(wav.write_pcm16(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes(), R))
    report = await simulate_call(url(server), [OPEN, path], auth_token=TOKEN, barge_in_after_ms=1500)
    t2 = report.turns[1]
    assert t2.clears_ms, report.events  # the words barged in
    words_onset_ms = (0.4 + gap) * 1000 + _onset_ms(words)
    assert t2.clears_ms[0] >= words_onset_ms, (t2.clears_ms, words_onset_ms)  # the breath did not


def _onset_ms(pcm: np.ndarray) -> float:
    """The first 20 ms frame over -40 dBFS."""
    n = len(pcm) // 160
    rms = np.sqrt(np.mean(pcm[: n * 160].reshape(n, 160) ** 2, axis=1))
    return float(np.nonzero(rms > 300)[0][0] * FRAME_MS)
