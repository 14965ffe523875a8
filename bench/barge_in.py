"""False barge-ins against detection latency, per BARGE_IN_MS candidate.

    uv run --extra local python -m bench.barge_in [--ms 60,80,100,120] [--voiced off,0.55] [--bursts 40]

The bot's own VAD (``media.vad.Vad`` at the default ``VAD_AGGRESSIVENESS``) and the
turn-start detector the call builds (``TurnController(TurnOptions(barge_in_ms=...)).detector``)
run over:

- the caller corpus, clean (``../shared/audio/callers``) and at 12 dB SNR
  (``../shared/audio/callers_noisy``). Speech onset and end come from the clean twin
  (first / last 20 ms frame over -40 dBFS, as ``bench.calls.speech_onset_ms``), placed in
  the noisy file by cross-correlation. Each file is preceded by 1 s of its own line noise
  (its lead-in and tail, looped), as a call's line carries noise before the caller talks.
  (a) non-speech (the primer, the lead-in before onset - 40 ms, the tail after end + 60 ms):
  every SPEECH_START there is a FALSE barge-in; (b) speech: a fresh detector from
  onset - 40 ms, time from onset to the end of the triggering frame is the detection
  latency; no trigger before the speech ends is a miss;
- short non-speech bursts synthesized from a fixed seed and mixed into that line noise
  (clicks; unvoiced coughs; breaths through the mouth and the nose; handset thumps; and
  stop 16's less realistic cough and breath, as "pop" and "hiss"): each burst sits in
  1 s of noise; a SPEECH_START anywhere in that second is a false barge-in.

Every speech start counts as a barge-in (the bot speaking throughout), so each
BARGE_IN_MS runs with the VAD's run alone and with the voicing gate the controller
applies over the bot (``media.voicing``, asked through ``Vad.voiced``), at each
``--voiced`` threshold; the last lines give the VAD's and the probe's CPU cost.

The latency here is on the audio clock (frames), the floor under ``bench.peers``'s
"clear p95" (which adds the bot's loop and the socket).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls import AUDIO, calibration  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.simulator import load_ulaw  # noqa: E402
from bot.turns.controller import TurnController, TurnOptions  # noqa: E402
from bot.turns.detector import TurnEvent  # noqa: E402
from media import frames, mulaw, voicing  # noqa: E402
from media.frames import FRAME_BYTES, FRAME_MS  # noqa: E402
from media.vad import Vad  # noqa: E402

NOISY = AUDIO.parent / "callers_noisy"
ONSET_RMS = 300.0  # -40 dBFS, as bench.calls.speech_onset_ms
QUIET_RMS = 30.0  # -60 dBFS: after the last frame over this (in the clean twin) the speech has died away
GUARD_BEFORE = 2  # frames before the onset that are neither noise nor speech (a soft first phoneme)
GUARD_AFTER = 3  # frames after the last loud one (a decaying last phoneme)
PRIME_S = 1.0
SEED = 13
BURSTS_PER_KIND = 40
SAMPLE = 8000
DEFAULT_MS = (60, 80, 100, 120)


def pcm(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(mulaw.decode(ulaw), "<i2").astype(np.float32)


def ulaw_of(x: np.ndarray) -> bytes:
    return mulaw.encode(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


def frame_rms(x: np.ndarray) -> np.ndarray:
    n = len(x) // 160
    return np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1))


@dataclass
class Clip:
    name: str
    ulaw: bytes  # primer + file, whole frames
    onset: int  # frame index of the speech onset in ``ulaw``
    end: int  # frame index of the last frame of speech (over -60 dBFS in the clean twin)
    loud_end: int  # the last loud one (over -40 dBFS): speech not detected by then is a miss
    onset_ms: float  # exact onset (the primer included), ms
    noise: np.ndarray = field(repr=False)  # the file's line noise (lead-in + tail), PCM


def speech_span(clean: np.ndarray) -> tuple[int, int, int]:
    """First and last frame over -40 dBFS, last frame over -60 dBFS."""
    r = frame_rms(clean)
    loud = np.nonzero(r > ONSET_RMS)[0]
    if not len(loud):
        raise ValueError("no speech")
    return int(loud[0]), int(loud[-1]), int(np.nonzero(r > QUIET_RMS)[0][-1])


def lag_of(clean: np.ndarray, noisy: np.ndarray) -> int:
    """Samples by which the noisy file runs behind its clean twin."""
    n = 1 << int(np.ceil(np.log2(len(clean) + len(noisy))))
    c = np.fft.irfft(np.fft.rfft(noisy, n) * np.conj(np.fft.rfft(clean, n)), n)
    k = int(np.argmax(c))
    return k if k < n // 2 else k - n


def clip(name: str, clean_u: bytes, file_u: bytes) -> Clip:
    clean, x = pcm(clean_u), pcm(file_u)
    first, last, dead = speech_span(clean)
    lag = lag_of(clean, x) if clean_u != file_u else 0
    start, stop = first * 160 + lag, (dead + 1) * 160 + lag
    lead, tail = x[: max(0, start - GUARD_BEFORE * 160)], x[min(len(x), stop + GUARD_AFTER * 160):]
    noise = np.concatenate([lead, tail])
    if len(noise) < 160:
        noise = np.zeros(160, np.float32)
    prime = np.resize(noise, int(PRIME_S * SAMPLE) // 160 * 160)  # looped
    whole = np.concatenate([prime, x])
    onset_ms = (len(prime) + start) / 8
    return Clip(name, ulaw_of(whole), int(onset_ms // FRAME_MS), (len(prime) + stop - 1) // 160,
                (len(prime) + (last + 1) * 160 + lag - 1) // 160, onset_ms, noise)


def corpus(folder: Path) -> list[Clip]:
    names = [m["file"] for m in json.loads((folder / "manifest.json").read_text())]
    return [clip(n, load_ulaw(AUDIO / n), load_ulaw(folder / n)) for n in names if (AUDIO / n).exists()]


# ----------------------------------------------------------------------------- bursts


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y * y)) + 1e-9)


def _coloured(rng: np.random.Generator, n: int, formants: list[tuple[float, float, float]], tilt_db_oct: float) -> np.ndarray:
    """White noise through resonances (centre Hz, bandwidth Hz, gain) and a spectral tilt:
    turbulent air shaped by the mouth and throat, as an unvoiced "h" or a whisper."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE)
    h = sum(g / (1 + ((f - fc) / (bw / 2)) ** 2) for fc, bw, g in formants)
    h = h * (np.maximum(f, 100) / 500) ** (tilt_db_oct / 6.02)
    h[(f < 100) | (f > 3800)] = 0
    y = np.fft.irfft(spec * np.sqrt(h), n)
    return y / (np.sqrt(np.mean(y * y)) + 1e-9)


def _tract(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Three resonances of an open vocal tract, wide (no voice drives them)."""
    return [(rng.uniform(400, 900), rng.uniform(150, 400), 1.0), (rng.uniform(1000, 2000), rng.uniform(200, 500), 0.5),
            (rng.uniform(2200, 3200), rng.uniform(300, 600), 0.3)]


def burst(kind: str, rng: np.random.Generator, floor_rms: float) -> np.ndarray:
    """One non-speech sound (PCM, unit = sample value), levels relative to the line noise."""
    if kind == "none":  # the line alone: the control
        return np.zeros(0)
    if kind == "click":  # a few ms of ringing, loud
        n = int(rng.uniform(0.002, 0.006) * SAMPLE)
        t = np.arange(n) / SAMPLE
        y = np.sin(2 * np.pi * rng.uniform(800, 3000) * t) * np.exp(-t / 0.0015)
        return y * 10 ** (rng.uniform(-12, -3) / 20) * 32767
    if kind == "pop":  # (the "cough" of stop 16) 30-80 ms broadband burst, sharp attack, decaying
        n = int(rng.uniform(0.030, 0.080) * SAMPLE)
        env = np.minimum(1, np.arange(n) / (0.004 * SAMPLE)) * np.exp(-np.arange(n) / (n / 3))
        return _band(rng, n, 200, 3000) * env * 10 ** (rng.uniform(-20, -8) / 20) * 32767
    if kind == "hiss":  # (the "breath" of stop 16) 150-400 ms flat 600-3500 Hz hiss, raised cosine, 3-12 dB over the line
        n = int(rng.uniform(0.150, 0.400) * SAMPLE)
        env = np.sin(np.pi * np.arange(n) / n) ** 2
        return _band(rng, n, 600, 3500) * env * floor_rms * 10 ** (rng.uniform(3, 12) / 20)
    if kind == "cough":  # unvoiced cough: a 20-40 ms explosive burst, then 100-250 ms of throat-coloured turbulence dying away
        n1, n2 = int(rng.uniform(0.020, 0.040) * SAMPLE), int(rng.uniform(0.100, 0.250) * SAMPLE)
        burst_ = _band(rng, n1, 200, 3500) * np.minimum(1, np.arange(n1) / (0.003 * SAMPLE))
        tail = _coloured(rng, n2, _tract(rng), rng.uniform(-6, 0)) * 0.5 * np.exp(-np.arange(n2) / (n2 / 3))
        return np.concatenate([burst_, tail]) * 10 ** (rng.uniform(-20, -8) / 20) * 32767
    if kind in ("breath", "nasal"):  # 200-500 ms of air, rising then falling, 3-18 dB over the line: through an open
        # mouth (tract resonances, tilted), or out through the nose (one low, narrow resonance: the hard case for a voicing check)
        n = int(rng.uniform(0.200, 0.500) * SAMPLE)
        t, peak = np.arange(n) / n, rng.uniform(0.3, 0.6)
        env = np.where(t < peak, np.sin(np.pi / 2 * t / peak) ** 2, np.cos(np.pi / 2 * (t - peak) / (1 - peak)) ** 2)
        shape = _tract(rng) if kind == "breath" else [(rng.uniform(250, 350), rng.uniform(80, 200), 1.0), (rng.uniform(900, 1200), rng.uniform(200, 400), 0.2)]
        return _coloured(rng, n, shape, rng.uniform(-6, 0)) * env * floor_rms * 10 ** (rng.uniform(3, 18) / 20)
    if kind == "thump":  # handset knock: 40-100 ms low rumble
        n = int(rng.uniform(0.040, 0.100) * SAMPLE)
        env = np.exp(-np.arange(n) / (n / 4))
        return _band(rng, n, 40, 300) * env * 10 ** (rng.uniform(-18, -6) / 20) * 32767
    raise ValueError(kind)


KINDS = ("none", "click", "cough", "breath", "nasal", "thump", "pop", "hiss")
SEED_INDEX = {"none": 0, "click": 1, "pop": 2, "hiss": 3, "thump": 4, "cough": 5, "breath": 6, "nasal": 7}  # pop/hiss: stop 16's streams, unchanged


def burst_stream(beds: list[np.ndarray], kind: str, count: int = BURSTS_PER_KIND) -> tuple[bytes, list[tuple[int, int]]]:
    """``count`` seconds of line noise, a burst at 0.4-0.6 s of each; the frame
    range of each second, after a primer second."""
    rng = np.random.default_rng([SEED, SEED_INDEX[kind]])
    bed = np.concatenate(beds)
    sec = SAMPLE
    out = [np.resize(np.roll(bed, 0), sec)]  # primer
    spans = []
    for i in range(count):
        seg = np.roll(bed, -int(rng.integers(len(bed))))
        seg = np.resize(seg, sec).astype(np.float64)
        floor = float(np.sqrt(np.mean(seg * seg))) or 30.0
        b = burst(kind, rng, floor)
        at = int(rng.uniform(0.4, 0.6) * sec)
        seg[at: at + len(b)] += b[: sec - at]
        spans.append(((i + 1) * sec // 160, (i + 2) * sec // 160))
        out.append(seg)
    return ulaw_of(np.concatenate(out)), spans


# ----------------------------------------------------------------------------- runs


@dataclass
class Flags:
    speech: list[bool]  # the VAD's verdict per frame
    per: list[float]  # media.voicing.periodicity of each speech frame (NaN elsewhere: never asked)


def flags_of(ulaw: bytes, aggressiveness: int, gate_db: float | None = None) -> Flags:
    vad = Vad(aggressiveness) if gate_db is None else Vad(aggressiveness, gate_db=gate_db)
    out = Flags([], [])
    recent = bytes(2 * voicing.HISTORY)
    for f in frames.split(ulaw):
        s = vad.is_speech_ulaw(f)
        recent = recent[len(f) * 2:] + mulaw.decode(f)
        out.speech.append(s)
        out.per.append(voicing.periodicity(recent) if s else math.nan)  # as Vad.voiced() asks it
    return out


def detector(ms: int):
    return TurnController(TurnOptions(barge_in_ms=ms)).detector


@dataclass
class Gate:
    """A barge-in confirmation rule: the VAD's run alone (``voiced`` None), or the run
    holding a frame whose periodicity reaches ``voiced`` (the controller's probe)."""

    voiced: float | None = None
    probes: int = 0  # probe calls made, as the call would make them

    @property
    def name(self) -> str:
        return "gated" if self.voiced is None else f"+voiced>={self.voiced:g}"


def starts(fl: Flags, lo: int, hi: int, ms: int, gate: Gate) -> list[int]:
    """Frames in [lo, hi) where a fresh detector fed from ``lo`` says SPEECH_START."""
    d, out, blank = detector(ms), [], b"\xff" * FRAME_BYTES

    def probe(k: int) -> bool:
        gate.probes += 1
        return bool(fl.per[k] >= gate.voiced)  # type: ignore[operator]

    for k in range(max(0, lo), min(hi, len(fl.speech))):
        voiced = None if gate.voiced is None else (lambda k=k: probe(k))
        if d.feed(blank, fl.speech[k], voiced) is TurnEvent.SPEECH_START:
            out.append(k)
    return out


@dataclass
class Row:
    false: int = 0
    noise_frames: int = 0
    files_false: int = 0
    files: int = 0
    lat: list[float] = field(default_factory=list)
    misses: int = 0
    frames: int = 0
    probes: int = 0  # voicing probes asked in the pass that runs as the call does


def run_corpus(clips: list[Clip], fls: list[Flags], ms: int, voiced: float | None) -> Row:
    r = Row()
    for c, fl in zip(clips, fls, strict=True):
        r.files += 1
        lead_end, tail_start = c.onset - GUARD_BEFORE, c.end + 1 + GUARD_AFTER
        whole = Gate(voiced)
        f = sum(1 for k in starts(fl, 0, len(fl.speech), ms, whole) if k < lead_end or k >= tail_start)  # as the call runs it
        r.frames += len(fl.speech)
        r.probes += whole.probes
        r.false += f
        r.files_false += f > 0
        r.noise_frames += max(0, lead_end) + max(0, len(fl.speech) - tail_start)
        hit = starts(fl, lead_end, c.loud_end + 1, ms, Gate(voiced))
        if hit:
            r.lat.append((hit[0] + 1) * FRAME_MS - c.onset_ms)
        else:
            r.misses += 1
    return r


def run_bursts(streams: dict[str, tuple[list[tuple[int, int]], Flags]], ms: int, voiced: float | None) -> dict[str, int]:
    return {kind: sum(1 for lo, hi in spans if starts(fl, lo, hi, ms, Gate(voiced))) for kind, (spans, fl) in streams.items()}


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(v, q)) if v else float("nan")


def per_call_us(fn, n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of CPU microseconds per call of ``fn(i)``, i in range(n)."""
    runs = []
    for _ in range(repeats):
        t = time.thread_time()
        for i in range(n):
            fn(i)
        runs.append((time.thread_time() - t) / n * 1e6)
    return statistics.median(runs)


def costs(ulaw: bytes, aggressiveness: int) -> tuple[float, float]:
    """CPU us per frame of ``Vad.is_speech_ulaw`` and per call of ``Vad.voiced`` (its probe)."""
    fr = frames.split(ulaw)
    vad = Vad(aggressiveness)
    speech_us = per_call_us(lambda i: vad.is_speech_ulaw(fr[i]), len(fr))
    return speech_us, per_call_us(lambda i: vad.voiced(), len(fr))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.barge_in", description=__doc__.split("\n")[0])
    ap.add_argument("--ms", default=",".join(map(str, DEFAULT_MS)), help="BARGE_IN_MS candidates, comma-separated")
    ap.add_argument("--aggressiveness", type=int, default=Settings.__dataclass_fields__["vad_aggressiveness"].default)
    ap.add_argument("--gate-db", type=float, default=None, help="the VAD's noise-floor gate (dB; 0: WebRTC's model alone; default: the bot's)")
    ap.add_argument("--bursts", type=int, default=BURSTS_PER_KIND, help="bursts per kind")
    ap.add_argument("--voiced", default=f"off,{voicing.VOICED:g}",
                    help="barge-in voicing thresholds to compare, comma-separated ('off': the VAD's run alone; default: off and the bot's)")
    a = ap.parse_args(argv)
    if not (AUDIO / "manifest.json").exists() or not (NOISY / "manifest.json").exists():
        print(f"skipped: the caller corpus is not here ({AUDIO} and {NOISY}, from ../shared)")
        return 0
    cands = [int(x) for x in a.ms.split(",") if x.strip()]
    gates = [None if x.strip() == "off" else float(x) for x in a.voiced.split(",") if x.strip()]
    sets = {"clean": corpus(AUDIO), "noisy 12dB": corpus(NOISY)}
    fls = {k: [flags_of(c.ulaw, a.aggressiveness, a.gate_db) for c in v] for k, v in sets.items()}
    beds = [c.noise for c in sets["noisy 12dB"]]
    streams = {}
    for kind in KINDS:
        u, spans = burst_stream(beds, kind, a.bursts)
        streams[kind] = (spans, flags_of(u, a.aggressiveness, a.gate_db))
    gate = "default" if a.gate_db is None else f"{a.gate_db:g} dB"
    print(f"VAD aggressiveness {a.aggressiveness}, noise-floor gate {gate}; primer {PRIME_S:.0f} s of each file's own line noise; "
          f"bursts: {a.bursts} per kind in 12 dB line noise (seed {SEED}); every speech start counts as a barge-in")
    head = (f"{'BARGE_IN_MS':>11s} {'barge-in gate':>14s} {'corpus':>10s} | {'false/min':>9s} {'files w/ false':>14s} | "
            f"{'lat p50':>7s} {'p95':>5s} {'max':>5s} {'misses':>6s} | bursts falsely triggering ({'/'.join(KINDS)}, of {a.bursts})")
    print(head)
    print("-" * len(head))
    probes = frames_seen = 0
    for ms in cands:
        for v in gates:
            b = run_bursts(streams, ms, v)
            for k, clips in sets.items():
                r = run_corpus(clips, fls[k], ms, v)
                minutes = r.noise_frames * FRAME_MS / 60_000
                if v is not None and ms == TurnOptions().barge_in_ms:
                    probes, frames_seen = probes + r.probes, frames_seen + r.frames
                print(f"{ms:>11d} {Gate(v).name:>14s} {k:>10s} | {r.false / minutes if minutes else 0:9.1f} {r.files_false:>6d}/{r.files:<3d} "
                      f"{100 * r.files_false / max(1, r.files):3.0f}% | "
                      f"{pct(r.lat, 50):7.0f} {pct(r.lat, 95):5.0f} {max(r.lat, default=float('nan')):5.0f} {r.misses:>6d} | "
                      + ("/".join(str(b[x]) for x in KINDS) if k == "clean" else f"(non-speech: {minutes:.2f} min)"))
    speech_us, probe_us = costs(sets["noisy 12dB"][0].ulaw + sets["clean"][0].ulaw, a.aggressiveness)
    if frames_seen:
        share = probes / frames_seen
        print(f"cost: Vad.is_speech_ulaw {speech_us:.1f} us a frame; the voicing probe {probe_us:.1f} us a call, asked on "
              f"{100 * share:.1f} % of frames with the bot speaking throughout (the corpus at the default BARGE_IN_MS): "
              f"{share * probe_us:.2f} us a frame on average")
    else:
        print(f"cost: Vad.is_speech_ulaw {speech_us:.1f} us a frame; the voicing probe {probe_us:.1f} us a call")
    print(calibration())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
