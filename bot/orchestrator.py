"""One turn: STT -> LLM -> TTS, streaming inside.

LLM deltas are cut into sentences; each sentence goes to TTS as soon as it is
complete, so audio starts before the LLM has finished. Every stage is bounded by
its time budget (to the first output and between outputs), and every failure
comes out as a ``StageError`` naming the stage: never a hang, never a bare
vendor exception.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

from bot.conversation import Action, Conversation
from bot.errors import EMPTY_RESULT, TIMEOUT, UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.providers.base import LLM, STT, TTS
from bot.providers.kit import is_output
from bot.speech_bounds import MAX_REPLY_CHARS, MAX_SENTENCE_CHARS, ReplyBudget, bounded
from bot.stall import Stall

T = TypeVar("T")
log = logging.getLogger("bot.orchestrator")
GUARD_S = 0.05  # adapters time out themselves; this catches one that does not


@dataclass(frozen=True)
class AudioChunk:
    index: int  # the sentence it belongs to
    data: bytes


@dataclass(frozen=True)
class SentenceEnd:
    index: int
    text: str


@dataclass(frozen=True)
class ActionRequested:
    action: Action


SpeechEvent = AudioChunk | SentenceEnd | ActionRequested


@dataclass
class Timings:
    """Milliseconds, measured from ``t0`` (the start of the turn)."""

    t0: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, since: float | None = None) -> float:
        ms = (time.perf_counter() - (self.t0 if since is None else since)) * 1000
        self.stages.setdefault(name, round(ms, 1))
        return ms

    def server_timing(self) -> str:
        return ", ".join(f"{k};dur={v:.1f}" for k, v in self.stages.items())


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


class SentenceSplitter:
    """Accumulates LLM deltas and returns whole sentences as they complete.

    With ``first_clause``, the reply's first unit may end at a comma (after at least
    two words): TTS then starts on "Tomorrow, Wednesday," instead of the whole first
    sentence, which is what the caller waits for.
    """

    def __init__(self, min_chars: int = 12, *, first_clause: bool = False) -> None:
        self._buf = ""
        self.min_chars = min_chars
        self._first = first_clause

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        start = 0
        if self._first:
            sentence = _SENTENCE_END.search(self._buf)
            for m in _CLAUSE_END.finditer(self._buf):
                if sentence is not None and m.start() > sentence.start():
                    break
                head = self._buf[: m.start()]
                if len(head.split()) >= 2 and len(head) >= self.min_chars:
                    out.append(head.strip())
                    start = m.end()
                    self._first = False
                    break
            if sentence is not None:
                self._first = False
        for m in _SENTENCE_END.finditer(self._buf, start):
            if m.start() - start >= self.min_chars:
                out.append(self._buf[start : m.start()].strip())
                start = m.end()
        self._buf = self._buf[start:]
        if len(self._buf) > MAX_SENTENCE_CHARS:  # no sentence end in sight: say what is there, in bounded pieces
            pieces = bounded(self._buf)
            out += pieces[:-1]
            self._buf = self._buf[len(self._buf.rstrip()) - len(pieces[-1]):]
        return [piece for s in out if s for piece in bounded(s)]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        return bounded(rest) if rest else []


async def _guard(aw: Awaitable[T], budget: float, stage: str, provider: str) -> T:
    try:
        async with asyncio.timeout(budget + GUARD_S):
            return await aw
    except TimeoutError:
        raise StageError(stage, TIMEOUT, f"no answer within {budget:.1f} s", provider=provider) from None


async def _bounded(it: AsyncIterator[T], budget: float, stage: str, provider: str) -> AsyncIterator[T]:
    """Iterate ``it`` with ``budget`` seconds (plus ``GUARD_S``) to each item, as one lazy
    bound on the whole stream (bot/stall.py), not a timer per item; the consumer's time
    with an item does not count, nor does an empty audio chunk as progress (``kit.is_output``;
    the LLM's "" is: its adapter yields it while holding a clause back). Anything but
    StageError or cancellation leaking out of an adapter becomes an upstream error."""
    limit = budget + GUARD_S
    progress = is_output if stage == "tts" else None
    try:
        async with aclosing(Stall(asyncio.get_running_loop().time() + limit, limit).over(it, progress)) as items:
            async for item in items:
                yield item
    except TimeoutError:  # ours, or an adapter's own that leaked: either way the stage timed out
        raise StageError(stage, TIMEOUT, f"no answer within {budget:.1f} s", provider=provider) from None
    except (StageError, asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - an adapter bug must still name the stage
        raise StageError(stage, UPSTREAM_ERROR, f"{type(exc).__name__} in {provider} adapter", provider=provider) from None
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


class Orchestrator:
    def __init__(
        self, stt: STT, llm: LLM, tts: TTS, *, stt_timeout: float, llm_timeout: float, tts_timeout: float, first_clause: bool = True
    ) -> None:
        self.stt, self.llm, self.tts = stt, llm, tts
        self.first_clause = first_clause
        self.stt_timeout, self.llm_timeout, self.tts_timeout = stt_timeout, llm_timeout, tts_timeout

    async def transcribe(self, pcm16: bytes, rate: int, timings: Timings) -> str:
        t = time.perf_counter()
        try:
            text = await _guard(self.stt.transcribe(pcm16, rate), self.stt_timeout, "stt", self.stt.name)
        except (StageError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - an adapter bug must still name the stage
            raise StageError("stt", UPSTREAM_ERROR, f"{type(exc).__name__} in {self.stt.name} adapter", provider=self.stt.name) from None
        finally:
            timings.stages["stt"] = round((time.perf_counter() - t) * 1000, 1)
        if not text or not text.strip():
            raise StageError("stt", EMPTY_RESULT, "no speech recognised", provider=self.stt.name)
        return text.strip()

    async def _produce(self, conversation: Conversation, sentences: asyncio.Queue[str | Action | StageError | None], timings: Timings) -> None:
        """The LLM's reply into ``sentences``: each sentence within the reply budget, an
        action as it comes, then None (the end) or the StageError that stopped it."""
        t_llm = time.perf_counter()
        splitter = SentenceSplitter(first_clause=self.first_clause)
        budget = ReplyBudget()

        def say(sentences_: list[str]) -> None:
            for s in sentences_:
                if said := budget.take(s):
                    sentences.put_nowait(said)

        first = True
        try:
            async for item in _bounded(self.llm.reply(conversation), self.llm_timeout, "llm", self.llm.name):
                if first:
                    timings.mark("llm_first_token", t_llm)
                    first = False
                if isinstance(item, Action):
                    sentences.put_nowait(item)
                    continue
                say(splitter.feed(item))
            say(splitter.flush())
            if budget.cut:
                log.warning("reply cut", extra=kv(stage="llm", provider=self.llm.name, max_chars=MAX_REPLY_CHARS))
            timings.stages["llm"] = round((time.perf_counter() - t_llm) * 1000, 1)
            sentences.put_nowait(None)
        except StageError as err:
            sentences.put_nowait(err)

    async def _speak(self, index: int, text: str, mulaw: bool, timings: Timings) -> AsyncGenerator[AudioChunk, None]:
        """One sentence's audio; a TTS that yields no bytes for it is an EMPTY_RESULT."""
        t_tts = time.perf_counter()
        got = 0
        async for chunk in _bounded(self.tts.synthesize(text, mulaw=mulaw), self.tts_timeout, "tts", self.tts.name):
            if not chunk:
                continue
            if not got:
                timings.mark("tts_first_byte", t_tts)
                timings.mark("first_audio")
            got += len(chunk)
            yield AudioChunk(index, chunk)
        if not got:
            raise StageError("tts", EMPTY_RESULT, "no audio for a sentence", provider=self.tts.name)

    async def respond(self, conversation: Conversation, *, mulaw: bool, timings: Timings) -> AsyncIterator[SpeechEvent]:
        """Stream the reply to ``conversation`` as sentence markers and audio.

        The LLM runs in its own task, filling a sentence queue while TTS speaks the
        previous sentence. Closing or cancelling this generator cancels both.
        """
        sentences: asyncio.Queue[str | Action | StageError | None] = asyncio.Queue()
        producer = asyncio.create_task(self._produce(conversation, sentences, timings), name="llm-producer")
        index = 0
        spoke = False
        tts_ms = 0.0
        try:
            while True:
                item = await sentences.get()
                if item is None:
                    break
                if isinstance(item, StageError):
                    raise item
                if isinstance(item, Action):
                    yield ActionRequested(item)
                    continue
                t_tts = time.perf_counter()
                async with aclosing(self._speak(index, item, mulaw, timings)) as audio:
                    async for chunk in audio:
                        yield chunk
                tts_ms += (time.perf_counter() - t_tts) * 1000
                spoke = True
                yield SentenceEnd(index, item)
                index += 1
            if not spoke:
                raise StageError("llm", EMPTY_RESULT, "the reply was empty", provider=self.llm.name)
        finally:
            timings.stages["tts"] = round(tts_ms, 1)
            if not producer.done():
                producer.cancel()
            try:
                await producer
            except asyncio.CancelledError:
                if not producer.cancelled():
                    raise
