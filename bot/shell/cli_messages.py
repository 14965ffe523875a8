"""python -m bot messages: the messages callers left, newest first.

The plain listing is for a terminal, so every field a caller could have influenced is
escaped: control characters (an escape sequence could clear the screen or recolour it)
and line breaks (which could fake another entry) are shown as visible escapes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.settings import Settings, SettingsError
from bot.store.api import MESSAGE_STATUSES
from bot.store.sql import SQLITE_NAME
from bot.text_safety import visible

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(raw: str, tz: ZoneInfo, now: float | None = None) -> float:
    """A duration back from now ("2h", "30m", "1d") or an ISO date/time (in ``tz`` unless
    it names its own offset)."""
    now = time.time() if now is None else now
    m = _DURATION.fullmatch(raw.strip().lower())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since {raw!r}: expected a duration such as 2h, 30m, 7d or an ISO date/time such as 2026-11-25 or 2026-11-25T09:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def safe(text: str) -> str:
    """Printable on a terminal: control and bidi characters become visible escapes."""
    return visible(text)


def as_json(m, tz: ZoneInfo, delivery: list | None = None) -> dict:
    """A message as JSON: text fields through ``visible`` too (a raw U+202E or U+009B
    would reach the terminal of whoever reads the lines, ``jq`` output included)."""
    return {
        "id": m.id, "uid": m.uid, "status": m.status, "name": visible(m.name), "callback_number": visible(m.callback_number),
        "about": visible(m.about), "urgent": m.urgent, "caller": visible(m.caller), "call_sid": visible(m.call_sid),
        "created_at": datetime.fromtimestamp(m.created_at, tz).isoformat(timespec="seconds"),
        "delivery": [
            {"channel": d.channel, "target": visible(d.target), "state": d.state, "attempts": d.attempts,
             "last_error": visible(d.last_error) if d.last_error else d.last_error}
            for d in delivery or []
        ],
    }


def plain(m, tz: ZoneInfo, delivery: list | None = None) -> str:
    when = datetime.fromtimestamp(m.created_at, tz).strftime("%Y-%m-%d %H:%M %Z")
    flags = " URGENT" if m.urgent else ""
    return (
        f"#{m.id}  {when}  [{m.status}]{flags}  {safe(m.name) or '-'}  callback {safe(m.callback_number) or '-'}"
        f"  (caller {safe(m.caller) or '-'}, call {safe(m.call_sid)})\n    {safe(m.about) or '-'}"
        f"\n    delivery: {delivery_line(delivery or [])}"
    )


def delivery_line(delivery: list) -> str:
    """Each notification's channel and state: "webhook delivered, email failing (3 tries: smtp: ...)"."""
    if not delivery:
        return "none queued (no targets, or still a draft)"
    out = []
    for d in delivery:
        text = f"{d.channel} {d.state}"
        if d.state != "delivered" and d.attempts:
            text += f" ({d.attempts} {'try' if d.attempts == 1 else 'tries'}" + (f": {safe(d.last_error)}" if d.last_error else "") + ")"
        out.append(text)
    return ", ".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot messages", description="List the messages callers left, newest first.")
    ap.add_argument("limit", nargs="?", type=int, default=50, help="how many (default 50)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line per message")
    ap.add_argument("--since", metavar="WHEN", help="only messages since WHEN: a duration (2h, 30m, 7d) or an ISO date/time")
    ap.add_argument("--status", choices=MESSAGE_STATUSES, help="only messages with this status")
    ap.add_argument("--tz", metavar="ZONE", help="show times in this IANA zone (default: TIMEZONE, else the business file's zone)")
    args = ap.parse_args(argv)
    try:  # reading messages needs no Twilio credentials
        settings = Settings.from_env({**os.environ, "TWILIO_VALIDATE": "false"})
        tz = ZoneInfo(args.tz or settings.timezone)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (ZoneInfoNotFoundError, ValueError):
        print(f"--tz {args.tz!r}: expected an IANA zone such as Europe/London", file=sys.stderr)
        return 2
    try:
        since = parse_since(args.since, tz) if args.since else None
    except argparse.ArgumentTypeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    where = store_name(settings)
    if not settings.database_url and not (settings.data_dir / SQLITE_NAME).exists():
        # nothing to read: do not create a database just to read it, and say where we looked
        print(f"error: no message store at {where} (DATA_DIR={settings.data_dir}, from {os.getcwd()}). "
              "Set DATA_DIR (or DATABASE_URL) to the server's.", file=sys.stderr)
        return 1
    try:
        found, delivery = asyncio.run(_read(settings, since, args.status, args.limit))
    except OSError as exc:
        print(f"cannot read the message store {where}: {type(exc).__name__}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"messages from {where}", file=sys.stderr)
    if not found:
        print("no messages", file=sys.stderr if args.json else sys.stdout)
        return 0
    for m in found:
        d = delivery.get(m.id, [])
        print(json.dumps(as_json(m, tz, d), ensure_ascii=False) if args.json else plain(m, tz, d))
    return 0


def store_name(settings: Settings) -> str:
    """The store this reads, for the owner: SQLite's absolute path, or PostgreSQL's URL without its password."""
    if settings.database_url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return "PostgreSQL " + make_url(settings.database_url).render_as_string(hide_password=True)
        except ArgumentError:  # an odd URL still names its kind; open_store reports what is wrong
            return "PostgreSQL (DATABASE_URL)"
    return f"SQLite {(settings.data_dir / SQLITE_NAME).resolve()}"


async def _read(settings: Settings, since, status, limit):
    from bot.store import open_store

    store = await open_store(settings)
    try:
        found = await store.messages(since=since, status=status, limit=limit)
        return found, await store.delivery([m.id for m in found])
    finally:
        await store.close()
