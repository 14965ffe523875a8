"""Stdlib logging with structured key=value fields.

Call sites pass fields with ``extra={"fields": {...}}`` (or use ``kv``); the
formatter appends them. Fields must never hold audio, payloads, secrets or raw
phone numbers: the call sites mask numbers (bot.redact) and transcripts are only
logged when LOG_TRANSCRIPTS is set.
"""

from __future__ import annotations

import json
import logging
import sys


def kv(**fields) -> dict:
    return {"fields": fields}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.name} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            base += " " + " ".join(f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None)
        if record.exc_info:
            # operators get the trace in the log; clients never do
            base += "\n" + self.formatException(record.exc_info)
        return base


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    s = str(v)
    return json.dumps(s) if (" " in s or not s) else s


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "openai", "elevenlabs", "deepgram", "aiohttp.access", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
