"""media/: golden bytes for G.711, WAV round trips and refusals, framing, resampling, VAD."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bot.turns import detector
from media import frames, mulaw, resample, vad, wav
from tests.conftest import caller_wav, trimmed_speech
from tests.fakes.scripted import tone_pcm


def test_mulaw_golden_values():
    # ITU-T G.711 mu-law: 0 -> 0xFF, max positive -> 0x80, max negative -> 0x00
    pcm = struct.pack("<3h", 0, 32767, -32768)
    assert mulaw.encode(pcm) == bytes([0xFF, 0x80, 0x00])
    assert struct.unpack("<3h", mulaw.decode(bytes([0xFF, 0x80, 0x00]))) == (0, 32124, -32124)
    assert mulaw.decode(b"\x7f") == b"\x00\x00"  # the other zero code


def test_mulaw_round_trip_is_close():
    pcm = tone_pcm(100)
    back = np.frombuffer(mulaw.decode(mulaw.encode(pcm)), "<i2").astype(int)
    orig = np.frombuffer(pcm, "<i2").astype(int)
    assert np.max(np.abs(back - orig)) <= max(64, int(np.max(np.abs(orig)) * 0.04))
    with pytest.raises(ValueError):
        mulaw.encode(b"\x00\x01\x02")


def test_reads_twilio_mulaw_wav():
    a = wav.read(caller_wav("open_tomorrow_joe.wav"))
    assert a.rate == 8000 and abs(a.seconds - 2.804) < 0.001


def test_wav_pcm_round_trip_and_stereo_downmix():
    pcm = tone_pcm(50, 16000)
    assert wav.read(wav.write_pcm16(pcm, 16000)) == wav.Audio(pcm, 16000)
    left = np.full(4, 1000, "<i2")
    right = np.full(4, 3000, "<i2")
    inter = np.stack([left, right], axis=1).reshape(-1).tobytes()
    hdr = bytearray(wav.write_pcm16(inter, 8000))
    struct.pack_into("<HHIIHH", hdr, 20, 1, 2, 8000, 32000, 4, 16)
    assert np.all(np.frombuffer(wav.read(bytes(hdr)).pcm16, "<i2") == 2000)


def test_mulaw_wav_writer_is_format_7():
    ulaw = mulaw.encode(tone_pcm(40))
    data = wav.write_mulaw(ulaw)
    assert struct.unpack_from("<HHI", data, 20) == (7, 1, 8000)
    assert wav.read(data).pcm16 == mulaw.decode(ulaw)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d[:10], "RIFF"),
        (lambda d: b"RIFX" + d[4:], "RIFF"),
        (lambda d: d[:20] + struct.pack("<H", 3) + d[22:], "format 3"),  # float
        (lambda d: d[:34] + struct.pack("<H", 8) + d[36:], "8-bit"),
        (lambda d: d[:22] + struct.pack("<H", 6) + d[24:], "6 channel"),
        (lambda d: d[:24] + struct.pack("<I", 10) + d[28:], "out of range"),
        (lambda d: d[:36], "no data chunk"),
    ],
)
def test_refusals_say_what_was_found(mutate, needle):
    good = wav.write_pcm16(tone_pcm(20), 8000)
    with pytest.raises(wav.WavError) as exc:
        wav.read(mutate(good))
    assert needle in str(exc.value)


def test_lying_data_size_is_clamped():
    good = bytearray(wav.write_pcm16(tone_pcm(20), 8000))
    struct.pack_into("<I", good, 40, 0x7FFFFFF0)  # data chunk claims ~2 GB
    assert len(wav.read(bytes(good)).pcm16) == 320


def test_framing():
    ulaw = bytes(range(256)) * 2  # 512 bytes
    fr = frames.split(ulaw)
    assert [len(f) for f in fr] == [160, 160, 160, 160]
    assert fr[-1][32:] == b"\xff" * 128
    assert frames.join(fr)[:512] == ulaw
    assert len(frames.split(ulaw, pad=False)) == 3
    f = frames.Framer()
    out = list(f.feed(ulaw[:100])) + list(f.feed(ulaw[100:]))
    assert out == fr[:3] and f.pending == 32
    assert list(f.flush()) == [fr[3]]


def test_resample_keeps_tone_and_filters_alias():
    tone = tone_pcm(500, 16000, freq=440)
    down = resample.resample(tone, 16000, 8000)
    assert abs(len(down) - len(tone) // 2) <= 4
    # a 6 kHz tone is above the 4 kHz Nyquist of 8 kHz: anti-aliasing removes it
    alias = resample.resample(tone_pcm(500, 16000, freq=6000), 16000, 8000)
    x = np.frombuffer(alias, "<i2").astype(float)[400:-400]
    assert np.sqrt(np.mean(x**2)) < 100
    s = resample.StreamResampler(16000, 8000)
    streamed = b"".join(s.process(tone[i : i + 640]) for i in range(0, len(tone), 640)) + s.flush()
    assert abs(len(streamed) - len(down)) <= 8


def test_vad_finds_the_turn_in_caller_audio():
    a = wav.read(caller_wav("open_tomorrow_joe.wav"))
    ulaw = mulaw.encode(a.pcm16) + mulaw.silence(8000)
    v, td = vad.Vad(2), detector.TurnDetector(end_silence_ms=500)
    events = []
    for i, fr in enumerate(frames.split(ulaw)):
        ev = td.feed(fr, v.is_speech_ulaw(fr))
        if ev:
            events.append((ev, i * 20))
            if ev is detector.TurnEvent.TURN_END:
                audio = td.take_audio()
                break
    assert [e for e, _ in events] == [detector.TurnEvent.SPEECH_START, detector.TurnEvent.TURN_END]
    assert 200 <= events[0][1] <= 800
    assert 2.0 <= len(audio) / 8000 <= 3.0


def test_vad_ignores_silence_and_short_clicks():
    v, td = vad.Vad(2), detector.TurnDetector(min_speech_ms=200)
    # WebRTC VAD holds "speech" ~120 ms past a sound; a 60 ms click stays under 200 ms
    click = mulaw.encode(tone_pcm(60)) + mulaw.silence(8000)
    events = [td.feed(fr, v.is_speech_ulaw(fr)) for fr in frames.split(mulaw.silence(8000) + click)]
    assert detector.TurnEvent.TURN_END not in events


def test_turn_detector_early_end_and_resume():
    """Speech, a pause longer than the early silence but shorter than the end silence,
    more speech, then the end: MAYBE_END, RESUMED, MAYBE_END, TURN_END."""
    speech = mulaw.encode(trimmed_speech("open_tomorrow_joe.wav"))
    ulaw = mulaw.silence(8 * 300) + speech + mulaw.silence(8 * 500) + speech + mulaw.silence(8000)
    v, td = vad.Vad(2), detector.TurnDetector(end_silence_ms=800, early_silence_ms=300)
    events = []
    for fr in frames.split(ulaw):
        ev = td.feed(fr, v.is_speech_ulaw(fr))
        if ev:
            events.append(ev)
            if ev is detector.TurnEvent.MAYBE_END:
                peeked = td.peek_audio()
            if ev is detector.TurnEvent.TURN_END:
                break
    E = detector.TurnEvent
    assert events == [E.SPEECH_START, E.MAYBE_END, E.RESUMED, E.MAYBE_END, E.TURN_END]
    # the audio taken at the end is what was peeked at the last early end (plus silence)
    assert td.take_audio()[: len(peeked)] == peeked


def test_turn_detector_without_early_silence_has_no_speculative_events():
    a = wav.read(caller_wav("open_tomorrow_joe.wav"))
    ulaw = mulaw.encode(a.pcm16) + mulaw.silence(8000)
    v, td = vad.Vad(2), detector.TurnDetector(end_silence_ms=500, early_silence_ms=0)
    events = {td.feed(fr, v.is_speech_ulaw(fr)) for fr in frames.split(ulaw)}
    assert detector.TurnEvent.MAYBE_END not in events and detector.TurnEvent.TURN_END in events
