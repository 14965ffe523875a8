"""The real app (create_app: store, saver, deliverer, leases) in a process of its own, with
scripted providers, for tests that kill it: ``python -m tests.fakes.message_server PORT``.

Settings come from the environment. The receptionist is the dialogue; the STT answers by
how long the caller spoke (``STEP_TRANSCRIPTS``: a caller's utterance of about k units of
``STEP_UNIT_S`` seconds is the k-th step of leaving a message), so several simulated
callers can be at different steps at once; TTS is scripted.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from aiohttp import web

STEP_TRANSCRIPTS = [
    "I'd like to leave a message about my boiler",
    "my name is Ann Lee",
    "my number is five five five, one two three, four five six seven",
    "yes that's right",
]


@dataclass
class StepSTT:
    unit_s: float
    offset_s: float
    name: str = "step-stt"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        seconds = len(pcm16) / 2 / rate
        step = min(len(STEP_TRANSCRIPTS), max(1, round((seconds - self.offset_s) / self.unit_s)))
        logging.getLogger("tests.step_stt").info("heard", extra={"fields": {"seconds": round(seconds, 2), "step": step}})
        return STEP_TRANSCRIPTS[step - 1]


def main() -> None:
    from bot import logs
    from bot.providers.receptionist import Receptionist
    from bot.providers.registry import Providers
    from bot.settings import Settings
    from handlers.app import create_app
    from tests.fakes.scripted import ScriptedTTS

    settings = Settings.from_env()
    logs.setup(settings.log_level)
    stt = StepSTT(float(os.environ["STEP_UNIT_S"]), float(os.environ.get("STEP_OFFSET_S", "0")))
    providers = Providers(stt=stt, llm=Receptionist.from_settings(settings), tts=ScriptedTTS(ms_per_char=2))
    app = create_app(settings, providers=providers, embedded_prompt_fallback=False)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, handle_signals=True)


if __name__ == "__main__":
    main()
