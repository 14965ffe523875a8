"""python -m bot            serve (HOST, PORT from the environment)
python -m bot call ...   the call simulator (see bot.simulator)
python -m bot messages   the messages the receptionist took, newest first"""

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
        try:
            import uvloop  # type: ignore
        except ImportError:
            asyncio.run(run())
        else:
            uvloop.run(run())
    except (ValueError, RuntimeError) as exc:  # bad receptionist config, missing extras, ...
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 2
    return 0


def messages(argv: list[str]) -> int:
    import time
    from pathlib import Path

    from bot.messages import MessageStore

    import os

    try:  # reading messages needs no Twilio credentials
        settings = Settings.from_env({**os.environ, "TWILIO_VALIDATE": "false"})
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    path = Path(settings.data_dir) / "messages.sqlite3"
    if not path.exists():
        print(f"no messages yet ({path})")
        return 0
    limit = int(argv[0]) if argv and argv[0].isdigit() else 50
    for m in MessageStore(path).recent(limit):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.created_at))
        print(f"#{m.id}  {when}  {m.name or '-'}  callback {m.callback or '-'}  (caller {m.caller or '-'}, call {m.call_id})\n    {m.topic or '-'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "serve":
        return serve()
    if argv[0] == "call":
        from bot import simulator

        return simulator.main(argv[1:])
    if argv[0] == "messages":
        return messages(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
