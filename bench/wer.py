"""Word error rate of the embedded STT (faster-whisper tiny.en int8) on the shared
caller audio, per voice, clean and noisy (12 dB SNR).

    uv run --extra local python bench/wer.py

Target: joe voice <= 2 % on the clean set. Also prints the real-time factor.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AUDIO = REPO.parent / "shared" / "audio"

from bot.providers.whisper import WhisperSTT  # noqa: E402
from bot.wer import corpus_wer, wer  # noqa: E402
from media import wav  # noqa: E402


async def main() -> None:
    verbose = "-v" in sys.argv
    stt = WhisperSTT()
    t0 = time.monotonic()
    await stt.start()
    print(f"model load + warm-up: {time.monotonic() - t0:.2f} s")
    print(f"{'set':16s} {'voice':10s} {'files':>5s} {'WER %':>7s} {'worst %':>8s} {'RTF':>6s}")
    for folder in ("callers", "callers_noisy"):
        manifest = json.loads((AUDIO / folder / "manifest.json").read_text())
        by_voice: dict[str, list] = defaultdict(list)
        for m in manifest:
            audio = wav.read((AUDIO / folder / m["file"]).read_bytes())
            t = time.monotonic()
            try:
                hyp = await stt.transcribe(audio.pcm16, audio.rate)
            except Exception as e:  # noqa: BLE001 - report and count as all wrong
                hyp = f"<{e}>"
            spent = time.monotonic() - t
            by_voice[m["voice"]].append((m["text"], hyp, spent, audio.seconds))
            if verbose and wer(m["text"], hyp) > 0:
                print(f"   {m['file']}: {hyp!r}")
        pairs_all = []
        for voice, rows in sorted(by_voice.items()):
            pairs = [(r, h) for r, h, _, _ in rows]
            pairs_all += pairs
            rtf = sum(s for *_, s, _ in rows) / sum(d for *_, d in rows)
            worst = max(wer(r, h) for r, h in pairs)
            print(f"{folder:16s} {voice:10s} {len(rows):5d} {100 * corpus_wer(pairs):7.2f} {100 * worst:8.1f} {rtf:6.3f}")
        print(f"{folder:16s} {'all':10s} {len(pairs_all):5d} {100 * corpus_wer(pairs_all):7.2f}")
    await stt.close()


if __name__ == "__main__":
    asyncio.run(main())
