"""Is the LLM server there? A cheap probe for /healthz and /readyz, never for a call.

``GET {base}/models`` (OpenAI, llama.cpp, Ollama, vLLM all serve it; it costs no tokens)
with a short timeout, its answer kept for ``ttl_s`` so a balancer polling every second
sends one probe per ``ttl_s``, and concurrent health checks share one probe in flight.
Any HTTP answer but 401/403 or 5xx means the server is up (a 404 from a server without
the route still answered); a refused or timed-out connection means it is down.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

PROBE_TIMEOUT_S = 1.5
PROBE_TTL_S = 10.0


class ServerProbe:
    def __init__(self, url: str, api_key: str = "", *, timeout_s: float = PROBE_TIMEOUT_S, ttl_s: float = PROBE_TTL_S) -> None:
        self.url = url
        self.http: httpx.AsyncClient | None = None  # the adapter's pool, set when it starts
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s, self.ttl_s = timeout_s, ttl_s
        self._last: dict[str, Any] | None = None
        self._at = float("-inf")
        self._task: asyncio.Task | None = None

    def status(self) -> dict[str, Any] | None:
        """The last probe's answer ({"up": bool, "detail": str, "age_s": float}), None before the first."""
        if self._last is None:
            return None
        return {**self._last, "age_s": round(time.monotonic() - self._at, 1)}

    async def check(self) -> dict[str, Any] | None:
        """The server's state, probing it if the last answer is older than ``ttl_s``."""
        if self.http is None:
            return self.status()
        if time.monotonic() - self._at >= self.ttl_s:
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._probe(self.http), name="llm-probe")
            await asyncio.shield(self._task)
        return self.status()

    async def _probe(self, http: httpx.AsyncClient) -> None:
        try:
            r = await asyncio.wait_for(http.get(self.url, headers=self._headers, timeout=self.timeout_s), self.timeout_s + 0.5)
        except (TimeoutError, httpx.TimeoutException):
            self._last = {"up": False, "detail": f"no answer within {self.timeout_s:g} s"}
        except Exception as exc:  # noqa: BLE001 - any failure to connect is "down"
            self._last = {"up": False, "detail": f"connection failed ({type(exc).__name__})"}
        else:
            code = r.status_code
            up = code < 500 and code not in (401, 403)
            self._last = {"up": up, "detail": f"HTTP {code}" + ("" if up else (" (key refused)" if code in (401, 403) else " (server error)"))}
        self._at = time.monotonic()
