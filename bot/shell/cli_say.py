"""python -m bot say "text" out.wav: a caller utterance from the embedded voice.

Writes 8 kHz mu-law WAV, the format Twilio sends, with a little silence either
side (as a caller's line has), ready for ``python -m bot call``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bot.errors import StageError
from media import mulaw, wav

PAD_S = 0.3


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bot say",
        description="Speak TEXT with the embedded piper voice and write it as an 8 kHz mu-law WAV "
        "(what Twilio sends), to use as a caller utterance with `python -m bot call`. "
        "Needs the 'local' extra. PIPER_VOICE_PATH picks another voice.",
    )
    ap.add_argument("text", help="what the caller says")
    ap.add_argument("out", help="the WAV file to write")
    ap.add_argument("--pad", type=float, default=PAD_S, help=f"seconds of silence before and after (default {PAD_S})")
    args = ap.parse_args(argv)
    if not args.text.strip():
        print("error: nothing to say (TEXT is empty)", file=sys.stderr)
        return 2
    if args.pad < 0 or args.pad > 10:
        print("error: --pad must be between 0 and 10 seconds", file=sys.stderr)
        return 2
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"error: no such directory: {out.parent}", file=sys.stderr)
        return 2
    try:
        ulaw = asyncio.run(speak(args.text, os.environ.get("PIPER_VOICE_PATH", "")))
    except (RuntimeError, StageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    pad = mulaw.silence(int(args.pad * 8000))
    try:
        out.write_bytes(wav.write_mulaw(pad + ulaw + pad))
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({(len(ulaw) + 2 * len(pad)) / 8000:.1f} s, 8 kHz mu-law)")
    return 0


async def speak(text: str, voice_path: str = "") -> bytes:
    """``text`` as 8 kHz mu-law from the embedded piper voice."""
    from bot.providers.piper import PiperTTS

    tts = PiperTTS(voice_path=voice_path)
    try:
        await tts.start()
        return b"".join([c async for c in tts.synthesize(text, mulaw=True)])
    finally:
        await tts.close()
