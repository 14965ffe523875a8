"""The streaming-STT contract: Deepgram's live adapter meets it; the embedded app never
imports a cloud SDK."""

from __future__ import annotations

import subprocess
import sys

from bot.providers.stt_stream import StreamingSTT


def test_deepgram_live_meets_the_contract():
    from bot.providers.deepgram_live import DeepgramLive

    assert isinstance(DeepgramLive(api_key="k"), StreamingSTT)


def test_the_embedded_app_imports_no_deepgram():
    code = (
        "import sys\n"
        "from bot.settings import Settings\n"
        "from handlers.app import create_app\n"
        "create_app(Settings(twilio_validate=False))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('deepgram', 'openai', 'elevenlabs') or m == 'bot.providers.deepgram_live')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout
