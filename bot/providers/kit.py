"""The provider kit: what every vendor adapter needs and none should write again.

A vendor module composes these objects and keeps only what is its vendor's own (the
SDK call, the reply's shape, the errors only its SDK raises):

- ``Edge``: the adapter edge of one vendor for one stage. It makes the stage's one error
  type (``StageError``: stage, code, retryable, provider), maps whatever the SDK or the
  transport raised onto it (``map``; a vendor passes ``classify`` for its own exception
  types, the rest is common: timeouts, HTTP statuses, broken connections, unreadable
  replies), and bounds an awaitable by a deadline (``bounded``).
- ``Bounds``/``Read``: a stream read under three deadlines: to the first progress, between
  two items, and (optionally) for the whole stream, which ends it early (``Read.cut``)
  rather than failing it. One lazy timer for the whole stream (bot/stall.py); the
  consumer's time with an item does not count.
- ``HttpPool``: an adapter's HTTP connection pool and its pre-warming.
- ``is_output``: what counts as output. An empty chunk (``b""``), an empty or blank text
  is not: a member that yields only such items has said nothing, and a failover chain moves
  on (bot/providers/failover.py reads its members with this same test).

Anything but ``StageError`` that reaches ``Edge.guard`` or ``Edge.map`` is normalised
there; cancellation and generator exits pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import httpx

from bot.errors import BAD_RESPONSE, EMPTY_RESULT, TIMEOUT, UPSTREAM_ERROR, StageError, code_for_status
from bot.providers.warm import PoolWarmer, http_client
from bot.stall import Stall

T = TypeVar("T")

# A vendor's own mapping: (code, message) for the exceptions it knows, None for the rest.
Classify = Callable[[BaseException], "tuple[str, str] | None"]

_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError)


def is_output(item: object) -> bool:
    """Does this streamed item say something? ``b""``, ``""`` and blank text do not;
    anything else (audio bytes, words, an ``Action``) does."""
    if isinstance(item, bytes | bytearray | memoryview):
        return len(item) > 0
    if isinstance(item, str):
        return not item.isspace() and item != ""
    return item is not None


class Edge:
    """Errors and deadlines at one vendor adapter's edge.

    ``timeout``: the adapter's stage bound in seconds (named in timeout messages);
    ``classify``: the vendor's own exception types, tried before the common ones;
    ``engine``: an embedded engine's name: whatever it raises is its failure
    (``upstream_error``, "<engine> failed (<type>)"), not a vendor's reply to read.
    """

    def __init__(self, stage: str, provider: str, *, timeout: float = 0.0, classify: Classify | None = None,
                 engine: str = "") -> None:
        self.stage, self.provider, self.timeout = stage, provider, timeout
        self._classify = classify
        self._engine = engine

    def error(self, code: str, message: str, *, retryable: bool | None = None) -> StageError:
        return StageError(self.stage, code, message, provider=self.provider, retryable=retryable)

    def map(self, exc: BaseException) -> StageError:
        """The ``StageError`` for anything an SDK or a transport raised."""
        if isinstance(exc, StageError):
            return exc
        if self._engine:
            return self.error(UPSTREAM_ERROR, f"{self._engine} failed ({type(exc).__name__})")
        if self._classify is not None:
            known = self._classify(exc)
            if known is not None:
                return self.error(*known)
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            return self.error(TIMEOUT, "the HTTP client timed out")
        if hasattr(exc, "status_code"):  # the SDKs' ApiError / APIStatusError
            status = exc.status_code
            if not isinstance(status, int):
                return self.error(UPSTREAM_ERROR, "request failed without an HTTP status")
            if 200 <= status < 300:  # an SDK raises this for a 2xx body it cannot decode
                return self.error(BAD_RESPONSE, f"HTTP {status} with an undecodable body")
            return self.error(code_for_status(status), f"HTTP {status}")
        if isinstance(exc, httpx.HTTPError | OSError):
            return self.error(UPSTREAM_ERROR, f"connection failed ({type(exc).__name__})")
        if isinstance(exc, _UNREADABLE):
            return self.error(BAD_RESPONSE, f"unreadable reply ({type(exc).__name__})")
        return self.error(UPSTREAM_ERROR, f"unexpected failure ({type(exc).__name__})")

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Nothing but ``StageError`` leaves this block (cancellation passes through)."""
        try:
            yield
        except StageError:
            raise
        except Exception as exc:  # noqa: BLE001 - normalised here, the one place
            raise self.map(exc) from None

    async def bounded(self, aw: Awaitable[T], *, by: float | None = None, within: float | None = None, what: str = "no reply") -> T:
        """``aw`` by loop time ``by`` (or ``within`` seconds; default the stage timeout),
        else ``TIMEOUT`` naming ``what`` did not come."""
        if by is None:
            by = asyncio.get_running_loop().time() + (self.timeout if within is None else within)
        try:
            async with asyncio.timeout_at(by):
                return await aw
        except TimeoutError:
            raise self.error(TIMEOUT, f"{what} within {self.timeout if within is None else within:g} s") from None

    def require_text(self, text: object, *, what: str = "transcript") -> str:
        """A recognised text, stripped; blank is ``empty_result``, not a text at all ``bad_response``."""
        if not isinstance(text, str):
            raise self.error(BAD_RESPONSE, f"{what} is not a string")
        text = text.strip()
        if not text:
            raise self.error(EMPTY_RESULT, "nothing was recognised")
        return text

    def read(self, bounds: Bounds) -> Read:
        return Read(self, bounds)


@dataclass(frozen=True)
class Bounds:
    """A stream's deadlines: ``first_by`` (loop time) for the first progress, ``gap``
    seconds between items after it, ``total_by`` (loop time, optional) for the whole.
    ``tick_starts``: any progress item starts the stream (else only ``Read.start()``, for a
    source whose first items are not yet its answer: SSE events before the first token)."""

    first_by: float
    gap: float
    total_by: float | None = None
    tick_starts: bool = True
    first_what: str = "no first output"
    gap_what: str = "stream stalled"

    @classmethod
    def from_now(cls, first_s: float, gap: float, total_s: float | None = None, **kw: object) -> Bounds:
        now = asyncio.get_running_loop().time()
        return cls(now + first_s, gap, None if total_s is None else now + total_s, **kw)  # type: ignore[arg-type]


class Read:
    """One stream read under ``Bounds``. ``over(source)`` yields the source's items; an
    item that ``is_output`` (or every item, with ``progress=None``) restarts the gap bound.
    A bound that runs out raises ``TIMEOUT``; the total bound ends the stream quietly and
    sets ``cut``. A hot loop that parses as it reads uses the block form instead (no
    generator layer per item)::

        async with read:
            async for event in source:
                read.tick()            # progress
                read.hold(); yield x; read.resume()   # the consumer's time does not count
                if read.past_total(): break
    """

    def __init__(self, edge: Edge, bounds: Bounds) -> None:
        self.edge, self.bounds = edge, bounds
        self.cut = False
        self._stall = Stall(bounds.first_by, bounds.gap, tick_starts=bounds.tick_starts)

    @property
    def started(self) -> bool:
        return self._stall.started

    def start(self) -> None:
        """The source's real answer began: from now on only the gap bound applies."""
        self._stall.start()

    async def __aenter__(self) -> Read:
        await self._stall.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self._stall.__aexit__(et, exc, tb)
        except TimeoutError:
            if not self._stall.expired():
                raise
            raise self._timeout() from None

    def tick(self) -> None:
        self._stall.tick()

    def hold(self) -> None:
        self._stall.hold()

    def resume(self) -> None:
        self._stall.resume()

    def past_total(self) -> bool:
        """Is the whole-stream bound reached (then ``cut`` is set)?"""
        if self.bounds.total_by is not None and self._stall.now() >= self.bounds.total_by:
            self.cut = True
        return self.cut

    def _timeout(self) -> StageError:
        what = self.bounds.gap_what if self._stall.started else self.bounds.first_what
        return self.edge.error(TIMEOUT, f"{what} within {self.bounds.gap:g} s")

    async def over(self, source: AsyncIterator[T], progress: Callable[[T], bool] | None = is_output) -> AsyncGenerator[T, None]:
        stall, total_by = self._stall, self.bounds.total_by
        loop = asyncio.get_running_loop()
        try:
            async with aclosing(stall.over(source, progress)) as items:
                async for item in items:
                    yield item
                    if total_by is not None and loop.time() >= total_by:
                        self.cut = True
                        return
        except TimeoutError:
            if not stall.expired():
                raise
            raise self._timeout() from None


class HttpPool:
    """An adapter's httpx client on the shared pool (bot/providers/warm.py), opened at
    start-up, warmed when a call arrives, closed with the adapter."""

    def __init__(self, url: str, stage: str) -> None:
        self.warmer = PoolWarmer(url)
        self.stage = stage
        self.http: httpx.AsyncClient | None = None

    def open(self, timeout: float, **kwargs: object) -> httpx.AsyncClient:
        self.http = http_client(timeout, **kwargs)
        return self.http

    def used(self) -> None:
        self.warmer.used()

    async def warm(self) -> None:
        await self.warmer.warm(self.http, self.stage)

    async def close(self) -> None:
        http, self.http = self.http, None
        if http is not None:
            await http.aclose()


async def quietly(aw: Awaitable[object]) -> None:
    """Release a response or a connection: its failure must not mask the real outcome."""
    try:
        await aw
    except Exception:  # noqa: BLE001 - the outcome is already decided
        pass
