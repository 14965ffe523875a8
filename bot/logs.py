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
import time


def kv(**fields) -> dict:
    return {"fields": fields}


def timestamp(record: logging.LogRecord) -> str:
    """ISO-8601 in UTC with milliseconds: 2026-11-25T22:08:17.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the call site's fields
    as they are (numbers stay numbers); ``exc`` holds a trace for operators."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": timestamp(record), "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for k, v in (getattr(record, "fields", None) or {}).items():
            if v is not None:
                out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr; ``fmt`` is LOG_FORMAT: text (key=value) or json."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "openai", "elevenlabs", "deepgram", "aiohttp.access", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
