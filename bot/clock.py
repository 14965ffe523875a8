"""The one clock for durations and deadlines inside a call: the running event loop's.

A stock loop's clock is ``time.monotonic``; reading it through the loop lets a test run
whole calls on a virtual clock (tests/virtual_time.py) where a 30-second call takes a
fraction of a second. Outside a running loop (start-up, threads) it is ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import time


def now() -> float:
    """Seconds on the running loop's clock (``time.monotonic`` when no loop runs here)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
