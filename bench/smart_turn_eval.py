"""How well does Pipecat's Smart Turn v3 (the ONNX end-of-turn model inside the pipecat-ai
wheel) judge our callers, and what does one judgement cost on this CPU?

    bench/peers/pipecat/.venv/bin/python bench/smart_turn_eval.py   # (made by python -m bench.peers)

Runs in the Pipecat environment (onnxruntime, the model file and Pipecat's own feature
code live there), one ONNX thread, as Pipecat runs it. Cases, each fed as the model sees
it (speech so far plus 200 ms of silence, the silence after which Pipecat asks it):

- every utterance of the caller corpus, whole: the turn IS complete;
- every sample of examples/callers_pauses cut at each mid-sentence pause: NOT complete
  (the caller goes on), and whole: complete.

Prints the probability per case, accuracy per group, and ms per judgement (p50/p95).
"""

from __future__ import annotations

import audioop
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "audio" / "callers"
PAUSES = REPO / "examples" / "callers_pauses"
TAIL_MS = 200


def read_8k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        raw, width, rate, comptype = w.readframes(w.getnframes()), w.getsampwidth(), w.getframerate(), w.getcomptype()
    if comptype == "ULAW" or width == 1:
        raw, width = audioop.ulaw2lin(raw, 1), 2
    if width != 2:
        raw = audioop.lin2lin(raw, width, 2)
    if rate != 8000:
        raw, _ = audioop.ratecv(raw, 2, 1, rate, 8000, None)
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768


def read_any(path: Path) -> np.ndarray:
    try:
        return read_8k(path)
    except wave.Error:  # mu-law WAVs (format 7) that the wave module refuses
        data = path.read_bytes()
        i = data.index(b"data") + 8
        return np.frombuffer(audioop.ulaw2lin(data[i:], 2), "<i2").astype(np.float32) / 32768


def speech_end(x: np.ndarray) -> int:
    n = len(x) // 160
    rms = np.sqrt(np.mean((x[: n * 160] * 32768).reshape(n, 160) ** 2, axis=1))
    loud = np.nonzero(rms > 300)[0]
    return int((loud[-1] + 1) * 160) if len(loud) else len(x)


def calibration() -> str:
    """The same figure as bench/calls/ prints (it cannot be imported in this environment)."""
    best = float("inf")
    for _ in range(2):
        t, x = time.perf_counter(), 0
        for i in range(10_000_000):
            x += i
        best = min(best, time.perf_counter() - t)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    import os

    return f"calibration: 10M-step Python loop {best:.2f} s; nproc {os.cpu_count()}; load {load}"


def main() -> int:
    print(calibration())
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    st = LocalSmartTurnAnalyzerV3(cpu_count=1)
    st.set_sample_rate(8000)
    tail = np.zeros(TAIL_MS * 8, np.float32)
    cases: list[tuple[str, str, np.ndarray, bool]] = []  # group, name, audio, expected complete
    for m in json.loads((CORPUS / "manifest.json").read_text()):
        x = read_any(CORPUS / m["file"])
        cases.append(("corpus whole", m["file"], np.concatenate([x[: speech_end(x)], tail]), True))
    for m in json.loads((PAUSES / "manifest.json").read_text()):
        x = read_any(PAUSES / m["file"])
        for p in m["pauses"]:
            cases.append(("pauses cut at pause", f"{m['file']}@{p['at_ms']}", np.concatenate([x[: p["at_ms"] * 8], tail]), False))
        cases.append(("pauses whole", m["file"], np.concatenate([x[: speech_end(x)], tail]), True))
    st._predict_endpoint(cases[0][2])  # warm
    times, groups = [], {}
    for group, name, audio, expected in cases:
        t = time.perf_counter()
        prob = st._predict_endpoint(audio)["probability"]
        times.append((time.perf_counter() - t) * 1000)
        right = (prob > 0.5) == expected
        g = groups.setdefault(group, [0, 0])
        g[0] += right
        g[1] += 1
        if group != "corpus whole" or not right:
            print(f"  {group:20s} {name:38s} p(complete)={prob:.2f} {'ok' if right else 'WRONG'}")
    for group, (right, total) in groups.items():
        print(f"{group:20s}: {right}/{total} right")
    print(f"ms per judgement (1 ONNX thread, {len(times)} runs): p50 {np.percentile(times, 50):.1f}, "
          f"p95 {np.percentile(times, 95):.1f}, mean {np.mean(times):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
