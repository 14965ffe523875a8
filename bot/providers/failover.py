"""Failover chains: an STT / LLM / TTS that wraps several, tried in order.

A failure of one member (any ``StageError``) moves on to the next, inside the stage's
one time budget: a member that is not the last gets at most ``share`` of the time
left, so a hang in the first still leaves the second time to answer. Streaming
stages (LLM tokens, TTS audio) can only fail over before their first item; after
that the error is the turn's. A circuit breaker per member skips a provider that
keeps failing for a cool-down, then lets one trial call through (half-open). A
non-retryable failure (auth, bad request) opens the breaker at once. When every
breaker is open, the last member (usually the embedded engine) is still tried.

Two failures are the chain's own: a stream that ends without any output is
``empty_result`` (empty chunks and blank text are not output: ``kit.is_output``; an STT
is a stream of one item, so a blank transcript is no output too), and a stream that stalls for the stage budget between two
items is ``timeout``; both count against the member. An STT ``empty_result`` is not a
provider failure: the audio had no speech, another engine would hear the same silence,
so it is returned at once and counts as an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Generic, TypeVar

from bot.conversation import Action, Conversation
from bot.errors import EMPTY_RESULT, TIMEOUT, UNAVAILABLE, UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.providers.base import LLM, STT, TTS, Warmable
from bot.providers.kit import Bounds, Edge, is_output
from media.resample import StreamResampler

log = logging.getLogger("bot.providers")

T = TypeVar("T")
M = TypeVar("M", STT, LLM, TTS)  # the chain's member kind

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Breaker:
    def __init__(self, threshold: int = 3, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown_s, self.clock = threshold, cooldown_s, clock
        self.state = CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._trial = False

    @property
    def current(self) -> str:
        """The state as seen from outside: an open circuit whose cool-down is over is
        half-open (the next call is its trial)."""
        if self.state == OPEN and self.clock() - self._opened_at >= self.cooldown_s:
            return HALF_OPEN
        return self.state

    def would_allow(self) -> bool:
        """``allow()`` without taking the half-open trial."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return self.clock() - self._opened_at >= self.cooldown_s
        return not self._trial

    def allow(self) -> bool:
        if self.state == OPEN and self.clock() - self._opened_at >= self.cooldown_s:
            self.state, self._trial = HALF_OPEN, False
        if self.state == HALF_OPEN:
            if self._trial:
                return False  # one trial at a time
            self._trial = True
            return True
        return self.state == CLOSED

    def release(self) -> None:
        """The call was cancelled: no verdict; a half-open trial may be taken again."""
        self._trial = False

    def success(self) -> None:
        self.state, self.failures, self._trial = CLOSED, 0, False

    def failure(self, *, hard: bool = False) -> None:
        self.failures += 1
        self._trial = False
        if hard or self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self._opened_at = OPEN, self.clock()

    def snapshot(self) -> dict:
        state = self.current
        out = {"state": state, "consecutive_failures": self.failures}
        if state != CLOSED:  # seconds until the next trial call may go through
            out["retry_in_s"] = round(max(0.0, self.cooldown_s - (self.clock() - self._opened_at)), 1)
        return out


class FailoverChain(Generic[M]):
    """What the three chains share: members in order, a breaker each, one time budget."""

    def __init__(self, stage: str, members: Sequence[M], budget_s: float, *, share: float, threshold: int, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not members:
            raise ValueError("a failover chain needs at least one member")
        self.members: list[M] = list(members)
        self.stage, self.budget_s, self.share = stage, budget_s, share
        self.breakers = [Breaker(threshold, cooldown_s, clock) for _ in self.members]
        self.name = ">".join(m.name for m in self.members)
        self.last_used: str | None = None
        # what restarts the between-items bound: any item for an LLM (its adapter yields ""
        # while it holds a clause back), real output for the others (b"" is not audio)
        self.progress: Callable[[object], bool] | None = None if stage == "llm" else is_output

    async def start(self) -> None:
        errors = []
        for m in self.members:
            try:
                await m.start()
            except StageError as err:  # a member that cannot start is skipped, the chain still works
                errors.append(err)
                self.breakers[self.members.index(m)].failure(hard=True)
        if len(errors) == len(self.members):
            raise errors[-1]

    async def close(self) -> None:
        for m in self.members:
            try:
                await m.close()
            except Exception:  # noqa: BLE001 - closing must not fail shutdown
                log.warning("provider close failed", extra=kv(provider=m.name))

    async def warm(self) -> None:
        await asyncio.gather(*(m.warm() for m in self.members if isinstance(m, Warmable)), return_exceptions=True)

    def health(self) -> list[dict]:
        return [{"provider": m.name, **b.snapshot()} for m, b in zip(self.members, self.breakers, strict=True)]

    def _order(self) -> list[int]:
        allowed = [i for i, b in enumerate(self.breakers) if b.would_allow()]
        return allowed or [len(self.members) - 1]  # every circuit open: the last resort still answers

    def _take(self, i: int, order: list[int]) -> bool:
        """Claim member ``i`` (its half-open trial, if that is where it is)."""
        return self.breakers[i].allow() or i == order[-1]

    def _budget(self, i: int, order: list[int], deadline: float) -> float:
        left = deadline - asyncio.get_running_loop().time()
        return left if i == order[-1] else left * self.share

    def _failed(self, i: int, err: StageError, has_next: bool) -> None:
        self.breakers[i].failure(hard=not err.retryable)
        level = logging.WARNING if has_next else logging.ERROR
        log.log(level, "provider failed" + (", trying the next" if has_next else ""),
                extra=kv(stage=self.stage, provider=self.members[i].name, code=err.code, breaker=self.breakers[i].state))

    def _timeout(self, i: int, budget: float) -> StageError:
        return StageError(self.stage, TIMEOUT, f"no answer within its {budget:.2f} s share", provider=self.members[i].name)

    def _bug(self, i: int, exc: Exception) -> StageError:
        """An adapter let something other than StageError out: still the stage's error."""
        return StageError(self.stage, UPSTREAM_ERROR, f"{type(exc).__name__} in {self.members[i].name} adapter",
                          provider=self.members[i].name)

    def _no_speech(self, err: StageError) -> bool:
        return self.stage == "stt" and err.code == EMPTY_RESULT

    def _answered(self, i: int) -> None:
        self.breakers[i].success()
        self.last_used = self.members[i].name
        if i != 0:  # so logs can say this turn was answered by a failover provider
            log.info("answered by a failover provider", extra=kv(stage=self.stage, provider=self.last_used, chain=self.name))

    def _none_left(self, last: StageError | None) -> StageError:
        return last or StageError(self.stage, UNAVAILABLE, "no provider available", provider=self.name)

    async def _first(self, i: int, it: AsyncIterator[T], budget: float) -> T:
        """The first item of a member's stream that says something (``kit.is_output``:
        not ``b""``, not blank text) within its budget. A stream of only such empty items
        said nothing: ``empty_result``, and the next member is tried."""
        try:
            async with asyncio.timeout(max(0.0, budget)):
                while True:
                    item = await anext(it)
                    if is_output(item):
                        return item
        except StopAsyncIteration:
            raise StageError(self.stage, EMPTY_RESULT, "the stream ended with no output", provider=self.members[i].name) from None
        except TimeoutError:
            raise self._timeout(i, budget) from None
        except StageError:
            raise
        except Exception as exc:  # noqa: BLE001 - normalised, then the next member
            raise self._bug(i, exc) from None

    async def _rest(self, i: int, it: AsyncIterator[T]) -> AsyncIterator[T]:
        """The items after the first, each within the stage budget as one lazy bound
        (the kit's ``Read``; the orchestrator's own bound is a little longer, so a stall is
        the member's failure, not an anonymous cancellation). The consumer's time with an
        item does not count; what counts as progress is ``self.progress``."""
        edge = Edge(self.stage, self.members[i].name, timeout=self.budget_s)
        read = edge.read(Bounds.from_now(self.budget_s, self.budget_s, first_what="stalled", gap_what="stalled"))
        try:
            async with aclosing(read.over(it, self.progress)) as items:
                async for item in items:
                    yield item
        except (StageError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._bug(i, exc) from None

    async def _stream(self, open_it: Callable[[M], AsyncIterator[T]]) -> AsyncIterator[T]:
        """The one loop of every chain: members in breaker order, each within its share of
        the budget to its first output; after that the stream is that member's."""
        deadline = asyncio.get_running_loop().time() + self.budget_s
        order = self._order()
        last: StageError | None = None
        for i in order:
            if not self._take(i, order):
                continue
            member, breaker = self.members[i], self.breakers[i]
            it = open_it(member)
            settled = False
            try:
                budget = self._budget(i, order, deadline)
                try:
                    first = await self._first(i, it, budget)
                except StageError as err:
                    settled = True
                    if self._no_speech(err):  # the member answered: there was nothing to hear
                        self._answered(i)
                        raise
                    last = err
                    self._failed(i, err, i != order[-1])
                    continue
                self.last_used = member.name
                try:
                    yield first
                    async for item in self._rest(i, it):
                        yield item
                except StageError as err:  # after the first item there is no going back
                    settled = True
                    breaker.failure(hard=not err.retryable)
                    log.error("provider failed mid-stream", extra=kv(stage=self.stage, provider=member.name, code=err.code,
                                                                     breaker=breaker.state))
                    raise
                settled = True
                self._answered(i)
                return
            finally:
                if not settled:  # cancelled, or the consumer stopped early: no verdict
                    breaker.release()
                await _aclose(it)
        raise self._none_left(last)

    async def _call(self, call: Callable[[M], Awaitable[T]]) -> T:
        """A one-shot stage (STT) through the same loop: its result is a stream of one
        item, so a blank result is ``empty_result`` like an empty stream."""

        async def one(member: M) -> AsyncIterator[T]:
            yield await call(member)

        out = [item async for item in self._stream(one)]
        return out[0]


async def _aclose(it: object) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - the member already failed or finished
            pass


class FailoverSTT(FailoverChain[STT]):
    def __init__(self, members: Sequence[STT], budget_s: float, **kw) -> None:
        super().__init__("stt", members, budget_s, **kw)

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        return await self._call(lambda m: m.transcribe(pcm16, rate))


class FailoverLLM(FailoverChain[LLM]):
    def __init__(self, members: Sequence[LLM], budget_s: float, **kw) -> None:
        super().__init__("llm", members, budget_s, **kw)

    async def start(self) -> None:
        """Start the members, then hand a started receptionist member to the members that
        fall back on one (the OpenAI adapter's message-form turns), so that the fallback
        reads callers by meaning (its encoder loaded at start-up) and not by keywords."""
        await super().start()
        fallback = next((m for m in self.members if m.name == "receptionist"), None)
        if fallback is None:
            return
        for m in self.members:
            adopt = getattr(m, "adopt_receptionist", None)
            if m is not fallback and callable(adopt):
                adopt(fallback)

    def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        return self._stream(lambda m: m.reply(conversation))


class FailoverTTS(FailoverChain[TTS]):
    """Mu-law output is the same for every member; PCM is resampled to the first
    member's ``pcm_rate`` when another member answers."""

    def __init__(self, members: Sequence[TTS], budget_s: float, **kw) -> None:
        super().__init__("tts", members, budget_s, **kw)

    @property
    def pcm_rate(self) -> int:
        return self.members[0].pcm_rate

    def synthesize(self, text: str, *, mulaw: bool) -> AsyncIterator[bytes]:
        target = self.pcm_rate

        async def to_rate(member: TTS, it: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            if mulaw or member.pcm_rate == target:
                async for chunk in it:
                    yield chunk
                return
            rs = StreamResampler(member.pcm_rate, target)
            async for chunk in it:
                out = rs.process(chunk)
                if out:
                    yield out
            tail = rs.flush()
            if tail:
                yield tail

        return self._stream(lambda m: to_rate(m, m.synthesize(text, mulaw=mulaw)))
