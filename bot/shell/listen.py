"""The listening sockets, with nothing slow imported: ``python -m bot`` binds (or, under
WORKERS, the supervisor opens its sockets) before the web stack and the models load."""

from __future__ import annotations

import errno
import socket
import tempfile
from pathlib import Path


class StartupError(RuntimeError):
    """The server cannot start; the message says why in one line (no traceback)."""


def prepare_data_dir(path: Path) -> None:
    """DATA_DIR exists and is writable, or a StartupError says so."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StartupError(f"DATA_DIR={path} is not a writable directory ({exc.strerror}); set DATA_DIR to one that is") from None


def bind(host: str, port: int, reuse_port: bool = False, listen: bool = True, backlog: int = 128) -> socket.socket:
    """The listening socket, bound before anything slow is imported or loaded: a
    platform that waits for the port sees it at once (connections queue until the app
    answers them), and a port in use is a one-line StartupError.

    ``reuse_port``: the sockets bot.shell.supervisor opens, its own and one per worker, in one
    SO_REUSEPORT group (bot/shell/steering.py). ``listen=False``: the supervisor's check that
    the port is free (bound without SO_REUSEPORT, then closed)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise StartupError("WORKERS > 1 needs SO_REUSEPORT, which this platform lacks; set WORKERS=1")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"HOST={host}: cannot listen there ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        why = "is already in use (another server running? set PORT)" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise StartupError(f"port {port} on {host} {why}") from None
    return sock
