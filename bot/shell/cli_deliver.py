"""python -m bot deliver: only the outbox deliverer, against the configured database.

The server runs a deliverer itself; this command is for a separate worker (or for
sending what is queued while no server runs). Several may run on one PostgreSQL: each
row is leased to one of them at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from bot import logs
from bot.settings import Settings, SettingsError


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="python -m bot deliver",
        description="Send the queued notifications (webhook, e-mail, SMS) until stopped. Settings from the environment.",
    ).parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    asyncio.run(_run(settings))
    return 0


async def _run(settings: Settings) -> None:
    from bot.store import open_store
    from bot.store.deliver import Deliverer

    store = await open_store(settings)
    log = logging.getLogger("bot.store.deliver")
    log.info("deliverer started", extra=logs.kv(backend=store.dialect))
    task = asyncio.create_task(Deliverer(store, settings).run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait({task, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    await store.close()
