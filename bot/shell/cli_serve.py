"""python -m bot serve: run the server (the default command)."""

from __future__ import annotations

import argparse
import logging
import sys

from bot import logs
from bot.settings import Settings, SettingsError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot serve",
        description="Run the voice bot server. Every setting comes from the environment (see the README).",
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # set by bot.shell.supervisor
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # the worker's listening socket
    args = parser.parse_args(argv)
    worker = args.worker
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    import os

    os.environ.pop("PHONEBOT_STREAM_SECRET", None)  # read into the settings; nothing else needs it
    logs.setup(settings.log_level, settings.log_format, worker=worker)
    log = logging.getLogger("bot")
    if settings.trial and worker is None:  # said once: by the supervisor, or the one process
        log.warning(
            "TRIAL MODE (TRIAL=true): no Twilio signature checks and no API key on /v1; listening on %s. "
            "Anyone who can reach this port can place calls and use the API: for this machine only.", settings.host,
        )
    elif not settings.twilio_validate and worker is None:
        log.warning("TWILIO SIGNATURE VALIDATION IS OFF (TWILIO_VALIDATE=false): anyone can place calls into this bot. Local trials only.")
    if worker is None and settings.workers > 1:
        return _supervise(settings)
    from bot.shell.listen import StartupError, bind, prepare_data_dir

    try:  # before anything slow: a port in use or an unwritable DATA_DIR is one line at once
        prepare_data_dir(settings.data_dir)
        if args.fd is not None:  # a worker: the supervisor's socket, served once this worker is ready
            import socket

            sock = socket.socket(fileno=args.fd)
        else:
            sock = bind(settings.host, settings.port)
    except StartupError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 2

    standin = None
    if args.fd is None:  # one process: /livez answers while the web stack loads, not seconds later
        from bot.shell.standin import StandInThread

        standin = StandInThread(sock, settings.busy_text)
    from bot.files import private_dir
    from bot.shell.server import serve as serve_app
    from handlers.app import create_app

    private_dir(settings.data_dir)
    log.info("starting", extra=logs.kv(stt=settings.stt_provider, llm=settings.llm_provider, tts=settings.tts_provider))

    async def run() -> None:
        app = create_app(settings, background_startup=True)
        if standin is not None:
            standin.stop()  # the app takes the socket over
        await serve_app(settings, app, sock, early=args.fd is None)

    try:
        _loop_runner()(run())
    except (ValueError, RuntimeError) as exc:  # bad receptionist config, missing extras, ...
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if standin is not None:
            standin.stop()
    return 0


def _supervise(settings: Settings) -> int:
    """WORKERS > 1: check the port once, open the port's sockets, run the workers under bot.shell.supervisor."""
    from bot.shell.listen import StartupError, bind, prepare_data_dir
    from bot.shell.steering import steer
    from bot.shell.supervisor import Supervisor

    if settings.port == 0:
        print("start-up failed: PORT=0 (any free port) needs WORKERS=1: each worker would pick its own port", file=sys.stderr)
        return 2
    socks = []
    try:
        prepare_data_dir(settings.data_dir)
        bind(settings.host, settings.port, listen=False).close()  # in use: one line here, not one per worker
        # the supervisor's socket first (place 0 in the reuseport group), then one per worker
        socks = [bind(settings.host, settings.port, reuse_port=True, backlog=1024) for _ in range(settings.workers + 1)]
        try:
            steer(socks[0], [])
        except OSError as exc:
            raise StartupError(f"WORKERS > 1 needs Linux's reuseport steering ({exc.strerror}); set WORKERS=1") from None
    except StartupError as exc:
        for sock in socks:
            sock.close()
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 2
    return Supervisor(settings, settings.workers, socks).run()


def _loop_runner():
    """uvloop's run if it is installed, else asyncio's. Decided here, so the server does
    not run inside an ``except ImportError`` (every traceback would carry it)."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
