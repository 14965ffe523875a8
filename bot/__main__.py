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
    try:
        import uvloop  # type: ignore
    except ImportError:
        uvloop = None
    from aiohttp import web

    from handlers.app import create_app

    log.info("starting", extra=logs.kv(host=settings.host, port=settings.port, stt=settings.stt_provider, llm=settings.llm_provider, tts=settings.tts_provider))
    web.run_app(
        create_app(settings), host=settings.host, port=settings.port, print=None,
        shutdown_timeout=settings.drain_seconds, loop=uvloop.new_event_loop() if uvloop else None,
    )
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
