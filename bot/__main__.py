"""python -m bot            serve (HOST, PORT from the environment)
python -m bot call ...   the call simulator (see bot.simulator)"""

from __future__ import annotations

import logging
import sys

from bot import logs
from bot.settings import Settings, SettingsError


def serve() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    log = logging.getLogger("bot")
    if not settings.twilio_validate:
        log.warning("TWILIO SIGNATURE VALIDATION IS OFF (TWILIO_VALIDATE=false): anyone can place calls into this bot. Local trials only.")
    import asyncio

    from bot.server import serve as serve_app
    from handlers.app import create_app

    log.info("starting", extra=logs.kv(stt=settings.stt_provider, llm=settings.llm_provider, tts=settings.tts_provider))

    async def run() -> None:
        await serve_app(settings, create_app(settings))

    try:
        import uvloop  # type: ignore

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "serve":
        return serve()
    if argv[0] == "call":
        from bot import simulator

        return simulator.main(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
