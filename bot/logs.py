"""Stdlib logging with structured key=value fields.

Call sites pass fields with ``extra={"fields": {...}}`` (or use ``kv``); the
formatter appends them, quoting and escaping any value with a space, a quote, an
``=`` or a non-printable character, so no value can forge another field or line.
Fields must never hold audio, payloads, secrets or raw
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
    def __init__(self, static: dict | None = None) -> None:
        super().__init__()
        self.static = static or {}  # on every line: a worker's index

    def format(self, record: logging.LogRecord) -> str:
        base = f"{timestamp(record)} {record.levelname} {record.name} {_printable(record.getMessage())}"
        fields = {**(getattr(record, "fields", None) or {}), **self.static}
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
    # a value a client chose (X-Request-Id, a path) must not start a new field or line
    return json.dumps(s) if (not s or not s.isprintable() or any(c in s for c in ' "=\\')) else s


def _printable(msg: str) -> str:
    """One line per record: control characters in a message are escaped."""
    return msg if msg.isprintable() else json.dumps(msg)[1:-1]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the call site's fields
    as they are (numbers stay numbers); ``exc`` holds a trace for operators."""

    def __init__(self, static: dict | None = None) -> None:
        super().__init__()
        self.static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": timestamp(record), "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for k, v in {**(getattr(record, "fields", None) or {}), **self.static}.items():
            if v is not None:
                out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def setup(level: str = "INFO", fmt: str = "text", worker: int | None = None) -> None:
    """Log to stderr; ``fmt`` is LOG_FORMAT: text (key=value) or json. ``worker``: a worker
    under bot.shell.supervisor, named on every line (``worker=1``)."""
    handler = logging.StreamHandler(sys.stderr)
    static = {} if worker is None else {"worker": worker}
    handler.setFormatter(JsonFormatter(static) if fmt == "json" else KeyValueFormatter(static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "openai", "elevenlabs", "deepgram", "aiohttp.access", "faster_whisper", "piper", "onnxruntime"):
        # piper logs every sentence it speaks at debug: what the bot says never reaches the log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet_protocol_errors()


class QuietProtocolErrors(logging.Filter):
    """For aiohttp's server logger: a malformed request or a client that went away is
    the client's problem, not ours. Such records lose their traceback, drop to INFO,
    and at most one per ``every_s`` seconds is written (with how many were folded)."""

    def __init__(self, every_s: float = 1.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last = float("-inf")
        self._folded = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _client_fault(exc):
            return True
        import time

        now = time.monotonic()
        if now - self._last < self.every_s:
            self._folded += 1
            return False
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "bad request from a client", ()
        record.fields = {"error": type(exc).__name__, "folded": self._folded}
        self._last, self._folded = now, 0
        return True


def _client_fault(exc: BaseException) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError
    from aiohttp.web_protocol import RequestPayloadError  # a body that cannot be decoded, met by aiohttp's lingering read

    return isinstance(exc, (HttpProcessingError, RequestPayloadError, ConnectionError))


def quiet_protocol_errors() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietProtocolErrors) for f in server.filters):
        server.addFilter(QuietProtocolErrors())
