"""python -m bot messages: the messages callers left, newest first."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bot.settings import Settings, SettingsError


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot messages", description="List the messages callers left, newest first.")
    ap.add_argument("limit", nargs="?", type=int, default=50, help="how many (default 50)")
    args = ap.parse_args(argv)
    from bot.messages import MessageStore

    try:  # reading messages needs no Twilio credentials
        settings = Settings.from_env({**os.environ, "TWILIO_VALIDATE": "false"})
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    path = Path(settings.data_dir) / "messages.sqlite3"
    if not path.exists():
        print(f"no messages yet ({path})")
        return 0
    for m in MessageStore(path).recent(args.limit):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.created_at))
        print(f"#{m.id}  {when}  {m.name or '-'}  callback {m.callback or '-'}  (caller {m.caller or '-'}, call {m.call_id})\n    {m.topic or '-'}")
    return 0
