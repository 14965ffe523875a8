"""Who a shared local engine serves first: phone turns ahead of HTTP API requests.

An engine with one work queue (the embedded STT, bot/providers/whisper.py) orders its jobs
by ``current()``; the HTTP API (handlers/orchestrate.py) runs its work inside ``api_lane()``.
The lane is a context variable, so it follows the request's task and nothing else.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

PHONE, API = 0, 1  # queue priorities: lower first
_lane: contextvars.ContextVar[int] = contextvars.ContextVar("stt_lane", default=PHONE)


@contextmanager
def api_lane() -> Iterator[None]:
    """Work started inside this block waits behind every phone turn."""
    token = _lane.set(API)
    try:
        yield
    finally:
        _lane.reset(token)


def current() -> int:
    """The lane of the code running now (PHONE unless inside ``api_lane()``)."""
    return _lane.get()
