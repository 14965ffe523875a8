"""OpenAI (or any OpenAI-compatible server) chat completions, streamed, with tools.

The system prompt is built from the business profile with the local date and time
(bot/tools.py). The reply streams as text deltas; tool calls arrive in fragments
(``delta.tool_calls[i]``: id and name first, then ``function.arguments`` pieces by
index), are run through the tool registry, and their results go back to the model
in a further completion for its next words. Terminal actions (transfer, hang-up) come
out as ``Action``s after the text. Every request sends ``tool_choice: "auto"`` with the
tools (llama.cpp's server ignores tools without it), ``max_tokens`` (LLM_MAX_TOKENS) and
stop sequences for chat-template junk.

What reaches the caller and the history is what bot/spoken.py lets through: no template
tokens, markup, tool names or read-out instructions; an invented next turn ends the
reply. ``timeout`` (LLM_TIMEOUT) bounds the wait for the first token and every gap
between chunks; ``reply_s`` (LLM_REPLY_S) the whole reply, so a rambling model is cut at
its last whole sentence. The history sent is trimmed to the context (LLM_CONTEXT_TOKENS,
bot/providers/llm_history.py); a server that still says the context overflowed gets a
harder trim and is believed about its size from then on.

What the server cannot do is learned from its answers, per adapter (README, "LLM server"):
a server that fails a streamed reply with tools (an error naming both, or twice a 200 that
ends with no event at all) gets the turn again non-streamed, and from then on every turn
with tools non-streamed; one that refuses tools goes on without them, the receptionist
taking the turns that need an action (a message, a person, an emergency, goodbye); one
that refuses ``max_tokens`` or ``stop`` goes on without them. With ``takeover`` (LLM_PROVIDER
is ``openai`` alone, no chain to fail over to), a turn the server fails that the
receptionist wants is answered by the receptionist, so a caller can still leave a
message while the server is down. Every failure leaves as ``StageError``; cancellation
passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
import openai
from openai import AsyncOpenAI

from bot.errors import BAD_RESPONSE, EMPTY_RESULT, RATE_LIMITED, TIMEOUT, UPSTREAM_ERROR, StageError, code_for_status
from bot.logs import kv
from bot.profile import Profile, cached_profile
from bot.providers import llm_history
from bot.providers.base import Action, Conversation
from bot.providers.llm_probe import ServerProbe
from bot.providers.openai_wire import (
    Round,
    context_size,
    error_text,
    is_context_overflow,
    parse_chunk,
    parse_message,
    refuses_streamed_tools,
    refuses_tools,
    sse_data,
    unsupported_param,
)
from bot.providers.warm import PoolWarmer, http_client
from bot.settings import DEFAULT_SYSTEM_PROMPT
from bot.spoken import SpokenText
from bot.stall import Stall
from bot.tools import ToolContext, ToolRegistry, business_tools, system_prompt

if TYPE_CHECKING:
    from bot.settings import Settings

T = TypeVar("T")
log = logging.getLogger("bot.providers.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_TOOL_ROUNDS = 3  # completions per reply: the first, and one after each round of tool results
STOP = ["<|im_start|>", "[INST]", "<<SYS>>", "\nUser:"]  # OpenAI takes at most four
CONTEXT_LENGTH = "context_length"  # StageError code: the history did not fit even trimmed
TAKEOVER_SHARE = 0.7  # of LLM_TIMEOUT the server gets on a turn the receptionist would take over
INSTRUCTION_LINES = ("To take a message", "Only state facts")  # system prompt lines never to be read out


class _StreamedTools(Exception):
    """The server cannot stream a reply while tools are offered (``said``: its error says
    so; else its stream ended with no event)."""

    def __init__(self, said: bool = True) -> None:
        self.said = said


class _ToolsRefused(Exception):
    """The server refused the tools; it has been asked again without them."""


class _Overflow(Exception):
    def __init__(self, size: int | None) -> None:
        self.size = size


class OpenAILLM:
    """LLM adapter over ``AsyncOpenAI.post("/chat/completions")``, a streamed body read as SSE bytes."""

    name = "openai"

    def __init__(
        self, *, api_key: str = "", base_url: str = "", model: str = "gpt-4o-mini", timeout: float = 8.0,
        instructions: str = DEFAULT_SYSTEM_PROMPT, transfer_number: str = "", profile: Profile | None = None,
        clock: Callable[[], datetime] | None = None, tools: ToolRegistry | None = None,
        max_tokens: int = 200, reply_s: float = 20.0, context_tokens: int = 4096, takeover: bool = True,
    ) -> None:
        """``base_url``: any OpenAI-compatible server (empty: OpenAI's own); ``timeout``: to
        the first token and between chunks, in seconds; ``instructions``: the system prompt's
        opening; ``transfer_number``: where transfers go (empty: the profile's numbers);
        ``profile``: the business (default: the bundled property office); ``clock``: the
        time now, for tests; ``tools``: the model's tools (default: the business tools);
        ``max_tokens``: a reply's length; ``reply_s``: a whole reply's time; ``context_tokens``:
        the model's context; ``takeover``: the receptionist answers the turns it wants
        when the server fails (when no failover chain does)."""
        self._api_key = api_key
        self._base_url = base_url
        self._model = model
        self._timeout = timeout
        self._instructions = instructions
        self._transfer_number = transfer_number
        self.profile = profile or cached_profile()
        self._clock = clock
        self.tools = tools or business_tools()
        self._tool_tokens = llm_history.tokens(self.tools.schemas())  # what the tools take of the context
        self._reply_s = reply_s
        self._context = context_tokens
        self._takeover = takeover
        self._client: AsyncOpenAI | None = None
        self._http: httpx.AsyncClient | None = None
        self._warmer = PoolWarmer((base_url or DEFAULT_BASE_URL).rstrip("/") + "/")
        self.probe = ServerProbe((base_url or DEFAULT_BASE_URL).rstrip("/") + "/models", api_key)
        # what this server has shown it can do (learned from its answers, kept for the process)
        self._use_tools = True  # False once it refuses tools
        self._stream_tools = True  # False once it fails a streamed reply with tools
        self._silent_stream_failures = 0  # streamed replies with tools that ended with no event
        self._params: dict[str, Any] = {"max_tokens": max_tokens, "stop": list(STOP)}
        self._squeeze = 1.0  # of the context the history may use: lowered when the server counts more tokens than estimated
        self._fallback: Any = None  # the receptionist, for the turns it takes
        self.last_usage: dict[str, int] | None = None  # token counts of the last reply, if sent
        self.last_trimmed = 0  # history messages left out of the last request

    @classmethod
    def from_settings(
        cls, s: Settings, *, profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
    ) -> OpenAILLM:
        chain = [p.strip() for p in s.llm_provider.split(",")]
        return cls(
            api_key=s.openai_api_key, base_url=s.openai_base_url, model=s.openai_model, timeout=s.llm_timeout,
            instructions=s.system_prompt, transfer_number=s.transfer_number,
            profile=profile or cached_profile(s.business_file), clock=clock,
            max_tokens=s.llm_max_tokens, reply_s=s.llm_reply_s, context_tokens=s.llm_context_tokens,
            takeover=not (len(chain) > 1 and "receptionist" in chain),  # a chain's receptionist answers instead
        )

    async def start(self) -> None:
        if self._client is not None:
            return
        # its own receptionist (unless a chain's was adopted) reads by meaning too: the encoder, once per process
        await self._receptionist().start()
        self._http = http_client(self._timeout + 1.0)
        self.probe.http = self._http
        self._client = AsyncOpenAI(
            http_client=cast(Any, self._http),  # the SDK takes httpx's client as well as its httpx2
            api_key=self._api_key or "not-needed",
            base_url=self._base_url or DEFAULT_BASE_URL,  # explicit: never read OPENAI_BASE_URL
            max_retries=0,
            timeout=self._timeout + 1.0,  # backstop; asyncio timeouts below are the real bound
        )

    async def warm(self) -> None:
        """Open a connection to the API host now, so the first turn has one ready."""
        await self._warmer.warm(self._http, "llm")

    async def close(self) -> None:
        self._http = self.probe.http = None
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing a pool must not fail shutdown
                pass

    def now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    async def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        """Stream text deltas (over one or more completions), then any terminal Actions."""
        if self._client is None:
            await self.start()
        if conversation.pending_message() is not None or (not self._use_tools and self._receptionist().wants_turn(conversation)):
            async for item in self._receptionist().reply(conversation):  # its message form, under way or wanted
                yield item
            return
        spoke = False
        # a turn the receptionist would take if the server fails leaves it time to answer within LLM_TIMEOUT
        first_s = self._timeout * TAKEOVER_SHARE if self._takeover and self._receptionist().wants_turn(conversation) else self._timeout
        acted: list[str] = []  # tools run in this reply (a message saved is not taken twice)
        try:
            async with contextlib.aclosing(self._reply(conversation, first_s, acted)) as items:
                async for item in items:
                    spoke = spoke or isinstance(item, Action) or bool(item.strip())
                    yield item
        except StageError as err:
            if spoke or acted or not self._takeover or not self._wanted(conversation):
                raise
            log.warning("llm failed: the receptionist takes this turn", extra=kv(call_sid=conversation.call_id, code=err.code))
        else:
            return
        async for item in self._receptionist().reply(conversation):
            yield item

    async def _reply(self, conversation: Conversation, first_s: float, acted: list[str]) -> AsyncGenerator[str | Action, None]:
        assert self._client is not None
        loop = asyncio.get_running_loop()
        reply_by = loop.time() + self._reply_s
        now = self.now()
        system = system_prompt(self.profile, now, self._instructions)
        guard = [self._instructions, *(line for line in system.splitlines() if line.startswith(INSTRUCTION_LINES))]
        ctx = ToolContext(conversation, self.profile, now, self._transfer_number)
        history = list(conversation.messages)
        self._warmer.used()
        self.last_usage = None
        got_text = False
        terminal: list[Action] = []
        spoken = SpokenText(tool_names=self.tools.tools, instructions=guard)
        whole: list[bool] = []  # set once this reply's streamed tool round came back empty: its next rounds go whole
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                rnd = Round()
                said: list[str] = []
                handover = False
                async with contextlib.aclosing(self._complete(self._client, system, history, rnd, reply_by, first_s, conversation.call_id, whole)) as texts:
                    async for text in texts:
                        if text == _REJECTED:
                            handover = self._receptionist().wants_turn(conversation)
                            if handover:
                                break
                            continue
                        out = spoken.feed(text)  # "" while a clause is held: still progress for the stage's gap bound
                        got_text = got_text or bool(out.strip())
                        said.append(out)
                        yield out
                        if spoken.stopped:  # an invented next turn: stop reading (the server stops generating)
                            break
                if handover:
                    async for item in self._receptionist().reply(conversation):
                        yield item
                    return
                cut = rnd.finish in ("length", _BUDGET)
                tail = spoken.flush(whole_only=cut)
                if tail:
                    got_text = got_text or bool(tail.strip())
                    said.append(tail)
                    yield tail
                if spoken.dropped:
                    log.warning("llm text dropped (tool names or instructions read out)",
                                extra=kv(call_sid=conversation.call_id, clauses=spoken.dropped))
                self.last_usage = rnd.usage or self.last_usage
                calls = [] if cut or spoken.stopped else rnd.ordered()
                if not calls:
                    break
                history.append({"role": "assistant", "content": "".join(said).strip() or None, "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
                for c in calls:
                    acted.append(c["name"])
                    result = await self.tools.call(c["name"], c["arguments"], ctx)
                    log.info("tool call", extra=kv(call_sid=conversation.call_id, tool=c["name"], ok=not result.content.startswith(("error", "not", "failed"))))
                    history.append({"role": "tool", "tool_call_id": c["id"], "content": result.content})
                    if result.action is not None and all(a.kind != result.action.kind for a in terminal):
                        terminal.append(result.action)
            if not got_text and not terminal:
                raise self._error(EMPTY_RESULT, "the model returned nothing to say")
            transfer = [a for a in terminal if a.kind == "transfer"]
            for action in transfer or terminal:
                yield action
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise self._map(e) from None

    def _wanted(self, conversation: Conversation) -> bool:
        """Would the receptionist take this turn, or did the caller ask it something it would
        have taken earlier in the call (a message the model was still taking when its server
        failed)?"""
        r = self._receptionist()
        if r.wants_turn(conversation):
            return True
        earlier = [m for m in conversation.messages[:-1] if m.get("role") == "user"][-6:]
        return any(r.wants_turn(Conversation(messages=[m])) for m in earlier)

    def adopt_receptionist(self, receptionist: Any) -> None:
        """Use this (started) receptionist for the turns it takes: a failover chain's own
        member, whose encoder is loaded, instead of an unstarted one reading by keywords."""
        self._fallback = receptionist

    def _receptionist(self):
        if self._fallback is None:
            from bot.providers.receptionist import Receptionist

            self._fallback = Receptionist(transfer_number=self._transfer_number, profile=self.profile, clock=self._clock)
        return self._fallback

    def _messages(self, system: str, history: list[dict], squeeze: float) -> list[dict]:
        """The system prompt and the newest history that fits the context (bot/providers/llm_history.py)."""
        head = {"role": "system", "content": system}
        history = history if self._use_tools else [m for m in history if m.get("role") != "tool" and not m.get("tool_calls")]
        reserve = int(self._params.get("max_tokens") or self._params.get("max_completion_tokens") or 0)
        fixed = llm_history.tokens(head) + (self._tool_tokens if self._use_tools else 0)
        budget = int(self._context * squeeze) - reserve - fixed - 32
        kept, self.last_trimmed = llm_history.trim(history, max(0, budget))
        return [head, *kept]

    async def _complete(self, client: AsyncOpenAI, system: str, history: list[dict], rnd: Round, reply_by: float,
                        first_s: float, call_sid: str, whole: list[bool]) -> AsyncGenerator[str, None]:
        """One completion's text (its tool calls and finish go into ``rnd``), with the
        server's limits learned on the way: a context overflow is retried trimmed harder,
        a refused streamed-tools reply non-streamed, refused tools without them (then
        ``_REJECTED`` is yielded first)."""
        first_by = asyncio.get_running_loop().time() + first_s
        overflows = 0
        for _ in range(5):
            messages = self._messages(system, history, self._squeeze)
            if self.last_trimmed:
                log.info("history trimmed to the context", extra=kv(call_sid=call_sid, left_out=self.last_trimmed, context=self._context))
            try:
                if self._use_tools and (not self._stream_tools or whole):
                    text = await self._whole(client, messages, rnd, first_by)
                    if text:
                        yield text
                    return
                try:
                    async for text in self._streamed(client, messages, rnd, first_by, reply_by):
                        yield text
                    return
                except _StreamedTools as refused:
                    rnd.calls.clear()
                    text = await self._whole(client, messages, rnd, first_by)
                    self._silent_stream_failures += not refused.said
                    whole.append(True)
                    if refused.said or self._silent_stream_failures >= 2:  # one empty 200 may be a glitch; twice is the server
                        self._stream_tools = False
                        log.warning("llm server cannot stream replies with tools: tool turns go non-streamed from now on",
                                    extra=kv(provider=self.name, model=self._model))
                    if text:
                        yield text
                    return
            except _ToolsRefused:
                yield _REJECTED
            except _Overflow as over:
                overflows += 1
                if overflows > 2:
                    raise self._error(CONTEXT_LENGTH, "the history does not fit the model's context even trimmed", retryable=True) from None
                if over.size and over.size < self._context:
                    self._context = over.size  # believe the server from now on
                self._squeeze = max(0.25, self._squeeze * 0.7)  # and its count over our estimate
                log.warning("llm context overflowed: trimming harder", extra=kv(call_sid=call_sid, context=self._context, squeeze=round(self._squeeze, 2)))
        raise self._error(BAD_RESPONSE, "the server kept refusing the request")

    async def _streamed(self, client: AsyncOpenAI, messages: list[dict], rnd: Round, first_by: float, reply_by: float) -> AsyncGenerator[str, None]:
        """One streamed completion: the body's server-sent events read from bytes, one
        ``json.loads`` per event, under one lazy bound for the whole stream (bot/stall.py)."""
        loop = asyncio.get_running_loop()
        response = await self._send(client, messages, stream=True, first_by=first_by)
        try:
            stall = Stall(first_by, self._timeout, tick_starts=False)
            try:
                async with stall:
                    async for event in sse_data(response.aiter_bytes()):
                        stall.tick()
                        if event == b"[DONE]":
                            break
                        chunk = json.loads(event.decode())  # str: skips json's encoding sniffing
                        rnd.events += 1
                        if isinstance(chunk, dict) and chunk.get("error") is not None:
                            if self._use_tools and not stall.started and refuses_streamed_tools(error_text(chunk)):
                                raise _StreamedTools
                            raise self._error(BAD_RESPONSE, "error event in the stream")
                        texts = parse_chunk(chunk, rnd)
                        if texts or rnd.calls:
                            stall.start()
                        for text in texts:
                            stall.hold()
                            yield text
                            stall.resume()
                        if loop.time() >= reply_by:
                            rnd.finish = _BUDGET
                            log.warning("llm reply cut: over its time budget", extra=kv(provider=self.name, reply_s=self._reply_s))
                            return
            except TimeoutError:
                if not stall.expired():
                    raise
                what = "stream stalled" if stall.started else "no first token"
                raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None
            except (httpx.TransportError, openai.APIConnectionError):
                if self._use_tools and rnd.events == 0:  # a 200 that broke off before any event
                    raise _StreamedTools(said=False) from None
                raise
            if self._use_tools and rnd.events == 0:  # a 200 with nothing in it
                raise _StreamedTools(said=False)
        finally:
            await _quietly(response.aclose())

    async def _whole(self, client: AsyncOpenAI, messages: list[dict], rnd: Round, first_by: float) -> str:
        """One non-streamed completion (its tool calls into ``rnd``): the whole reply must
        come within the first-token bound, as no token comes before it."""
        return parse_message(await self._send(client, messages, stream=False, first_by=first_by), rnd)

    async def _send(self, client: AsyncOpenAI, messages: list[dict], *, stream: bool, first_by: float) -> Any:
        """Send the request through the SDK's generic ``post`` (auth, base URL, status
        errors): the open response when streaming, else the parsed body. A 400 that names
        a parameter the server does not take is sent again without it."""
        for _ in range(3):
            body: dict[str, Any] = {"model": self._model, "messages": messages, **self._params}
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            if self._use_tools:
                body |= {"tools": self.tools.schemas(), "tool_choice": "auto"}
            try:
                return await self._bounded(self._post(client, body, stream), first_by, "no reply")
            except openai.BadRequestError as e:
                message = error_text(e.body) or str(e.message)
                if is_context_overflow(message):
                    raise _Overflow(context_size(message)) from None
                param = unsupported_param(message, ("max_tokens", "max_completion_tokens", "stop"))
                if param is not None:
                    value = self._params.pop(param, None)
                    if param == "max_tokens" and value:
                        self._params["max_completion_tokens"] = value
                    log.warning("llm server refused a parameter: sent without it from now on", extra=kv(provider=self.name, param=param))
                    continue
                if self._use_tools and stream and refuses_streamed_tools(message):
                    raise _StreamedTools from None
                if self._use_tools and refuses_tools(message):
                    self._use_tools = False  # e.g. an Ollama model without tool support
                    log.warning("llm server rejected tools: the receptionist takes messages, transfers and goodbyes",
                                extra=kv(provider=self.name, model=self._model))
                    raise _ToolsRefused from None
                raise
            except openai.APIStatusError as e:
                if self._use_tools and stream and refuses_streamed_tools(error_text(e.body) or str(e.message)):
                    raise _StreamedTools from None
                raise
        raise self._error(BAD_RESPONSE, "the server kept refusing the request's parameters")

    @staticmethod
    async def _post(client: AsyncOpenAI, body: dict[str, Any], stream: bool) -> Any:
        if stream:
            return await client.post("/chat/completions", cast_to=httpx.Response, body=body, stream=True)
        return await client.post("/chat/completions", cast_to=object, body=body)

    async def _bounded(self, aw: Awaitable[T], deadline: float, what: str) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await aw
        except TimeoutError:
            raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None

    def _map(self, e: Exception) -> StageError:
        if isinstance(e, (TimeoutError, openai.APITimeoutError)):
            return self._error(TIMEOUT, "the HTTP client timed out")
        if isinstance(e, openai.RateLimitError):
            return self._error(RATE_LIMITED, "HTTP 429")
        if isinstance(e, openai.APIStatusError):
            return self._error(code_for_status(e.status_code), f"HTTP {e.status_code}")
        if isinstance(e, (openai.APIConnectionError, httpx.TransportError)):
            return self._error(UPSTREAM_ERROR, "connection failed")
        if isinstance(e, openai.APIError):
            return self._error(BAD_RESPONSE, "error event in the stream")
        if isinstance(e, (ValueError, TypeError, AttributeError, KeyError, IndexError)):
            return self._error(BAD_RESPONSE, f"unreadable reply ({type(e).__name__})")
        return self._error(UPSTREAM_ERROR, f"unexpected failure ({type(e).__name__})")

    def _error(self, code: str, message: str, *, retryable: bool | None = None) -> StageError:
        return StageError("llm", code, message, provider=self.name, retryable=retryable)


async def _quietly(aw: Awaitable[object]) -> None:
    try:
        await aw
    except Exception:  # noqa: BLE001 - releasing a connection must not mask the real outcome
        pass


_REJECTED = "\x00tools-rejected"  # in-band marker from _complete: the server refused tools
_BUDGET = "budget"  # Round.finish when the reply ran out of LLM_REPLY_S
