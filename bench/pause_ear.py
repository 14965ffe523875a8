"""The wire fakes' ears for ``--pauses``: which words of the pause samples a piece of
audio holds, found by where the audio sits in the sample files.

The simulated callers send the files' own mu-law bytes, so any 10 ms of the bot's STT
audio (batch: the WAV it posts; live: the stream since the last final) can be found in
one file at one offset. The pieces of ``examples/callers_pauses/manifest.json`` that the
audio covers (at least ``MIN_COVER_MS`` of each) are its transcript, so a speculative
turn cut at a mid-sentence pause is transcribed as the half sentence it heard, and the
turn-completeness judgement sees what a real STT would give it. Audio from anywhere
else gets ``None`` (the fake's scripted transcript).
"""

from __future__ import annotations

import json
from pathlib import Path

from media import mulaw

REPO = Path(__file__).resolve().parents[1]
PAUSES = REPO / "examples" / "callers_pauses"
PROBE = 80  # bytes (10 ms) of audio looked up in the files
MIN_COVER_MS = 100
_NORM = mulaw.encode(mulaw.decode(bytes(range(256))))  # +0 and -0 decode alike: compare after a round trip


class PauseEar:
    def __init__(self, folder: Path = PAUSES) -> None:
        from bot.simulator import load_ulaw

        self.files: list[tuple[bytes, list[dict]]] = []
        for m in json.loads((folder / "manifest.json").read_text()):
            self.files.append((load_ulaw(folder / m["file"]).translate(_NORM), m["pieces"]))

    def _locate(self, audio: bytes, from_end: bool) -> tuple[int, int] | None:
        """(file index, byte offset in it of ``audio``'s start or end), from the first
        (or last) probe that is not near-constant."""
        n = len(audio) // PROBE
        order = range(n - 1, -1, -1) if from_end else range(n)
        for k in order:
            probe = audio[k * PROBE : (k + 1) * PROBE]
            if len(set(probe)) < 12:
                continue
            for i, (data, _) in enumerate(self.files):
                at = data.find(probe)
                if at >= 0:
                    return i, (at + len(audio) - k * PROBE if from_end else at - k * PROBE)
        return None

    def hear(self, ulaw: bytes) -> str | None:
        audio = ulaw.translate(_NORM)
        start, end = self._locate(audio, False), self._locate(audio, True)
        if start is None or end is None or start[0] != end[0]:
            return None
        s_ms, e_ms = start[1] / 8, end[1] / 8
        pieces = self.files[start[0]][1]
        words = [p["text"] for p in pieces if min(e_ms, p["end_ms"]) - max(s_ms, p["start_ms"]) >= MIN_COVER_MS]
        return " ".join(words) if words else None

    def hear_wav(self, body: bytes) -> str | None:
        """The batch STT's request body: a PCM16 WAV at 8 kHz."""
        from media import wav

        try:
            a = wav.read(body)
        except Exception:  # noqa: BLE001 - not a WAV we can read: no opinion
            return None
        if a.rate != 8000:
            return None
        return self.hear(mulaw.encode(a.pcm16))
