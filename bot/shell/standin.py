"""The stand-in answers, on the sockets no ready worker serves (and, for one process,
on its socket while the web stack loads: ``StandInThread``).

While no worker is ready (start-up, or every worker down) the kernel hands new
connections to the supervisor's own socket (bot/shell/steering.py); a worker's socket may also
hold a few connections that were waiting when it died. Each gets one short answer and
the connection is closed: ``/livez`` 200, ``/readyz`` 503 naming how many workers are
ready, the voice webhook the busy message and a ``<Connect action>`` an apology (TwiML; nothing
is admitted or acted on, so nothing needs a signature), anything else 503 with Retry-After. Nothing here reads a body beyond the
headers, and a client that sends no complete head within ``HEAD_TIMEOUT_S`` is dropped.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from xml.sax.saxutils import escape

HEAD_TIMEOUT_S = 2.0
MAX_HEAD = 16 * 1024
APOLOGY_TEXT = "Sorry, something went wrong with this call. Please call again."
MAX_OPEN = 64  # connections answered at once; past it a new one is closed at once


class StandIn:
    def __init__(self, busy_text: str, status: Callable[[], str]) -> None:
        """``status``: what /readyz says is missing, e.g. "workers 1/2 ready"."""
        self.busy_text, self.status = busy_text, status
        self.serving: dict[int, socket.socket] = {}  # fd -> listening socket
        self._open: set[asyncio.Task] = set()

    def serve(self, sock: socket.socket) -> None:
        if sock.fileno() in self.serving:
            return
        sock.setblocking(False)
        self.serving[sock.fileno()] = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def stop(self, sock: socket.socket) -> None:
        if self.serving.pop(sock.fileno(), None) is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())

    def close(self) -> None:
        for sock in list(self.serving.values()):
            self.stop(sock)
        for task in self._open:
            task.cancel()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(32):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: try again on the next wake-up
                return
            if len(self._open) >= MAX_OPEN:
                conn.close()
                continue
            conn.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._answer(conn))
            self._open.add(task)
            task.add_done_callback(self._open.discard)

    async def _answer(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = b""
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                    chunk = await loop.sock_recv(conn, 4096)
                    if not chunk:
                        return
                    head += chunk
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            await loop.sock_sendall(conn, self._response(method, path))
        except (TimeoutError, OSError, ValueError):
            pass
        finally:
            conn.close()

    def _response(self, method: str, path: str) -> bytes:
        if path == "/livez":
            return _http(200, "application/json", json.dumps({"status": "alive"}))
        if path == "/readyz":
            body = {"ready": False, "loading": self.status(), "problems": ["starting"]}
            return _http(503, "application/json", json.dumps(body))
        if method == "POST" and path in ("/twilio/voice", "/twilio/after"):
            # a new call hears "busy"; a call whose worker went away is told so, not left in silence
            text = self.busy_text if path == "/twilio/voice" else APOLOGY_TEXT
            twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{escape(text)}</Say><Hangup /></Response>'
            return _http(200, "application/xml", twiml)
        body = {"error": {"code": "starting", "message": f"the server is starting ({self.status()})"}}
        return _http(503, "application/json", json.dumps(body), retry_after=5)


class StandInThread:
    """A stand-in on its own thread and loop, for a single process while it imports the
    web stack and builds the app (seconds on a busy machine): ``/livez`` answers at once.
    ``stop()`` hands the socket over; nothing is closed, so nothing queued is lost."""

    def __init__(self, sock: socket.socket, busy_text: str) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self._standin = StandIn(busy_text, lambda: "starting")
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="standin", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _run(self, sock: socket.socket) -> None:
        self._loop.run_until_complete(self._serve(sock))
        self._loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        self._standin.serve(sock)
        self._ready.set()
        await self._stopping.wait()
        self._standin.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(5.0)


def _http(status: int, kind: str, body: str, retry_after: int | None = None) -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    data = body.encode()
    extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n"
    return head.encode() + data
