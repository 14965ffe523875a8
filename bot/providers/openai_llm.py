"""OpenAI (or any OpenAI-compatible server) chat completions, streamed, with tools.

The system prompt is built from the business profile with the local date and time (bot/tools.py).
The reply streams as text deltas; tool calls arrive in fragments (``delta.tool_calls[i]``: id and
name first, then ``function.arguments`` pieces by index), are run through the tool registry, and
their results go back to the model in a further completion for its next words. Terminal actions
(transfer, hang-up) come out as ``Action``s after the text. Every request sends ``tool_choice:
"auto"`` with the tools (llama.cpp's server ignores tools without it), ``max_tokens``
(LLM_MAX_TOKENS) and stop sequences for chat-template junk.

What reaches the caller and the history is what bot/spoken.py lets through: no template tokens,
markup, tool names or read-out instructions; an invented next turn ends the reply. ``timeout``
(LLM_TIMEOUT) bounds the wait for the first token and every gap between chunks; ``reply_s``
(LLM_REPLY_S) the whole reply, so a rambling model is cut at its last whole sentence. The history
sent is trimmed to the context (LLM_CONTEXT_TOKENS, bot/providers/llm_history.py); a server that
still says the context overflowed gets a harder trim and is believed about its size from then on.

What the server cannot do is learned from its answers, per adapter (README, "LLM server"): a server
that fails a streamed reply with tools (an error naming both, or twice a 200 that ends with no event
at all) gets the turn again non-streamed, and from then on every turn with tools non-streamed; one
that refuses tools goes on without them, the receptionist taking the turns that need an action (a
message, a person, an emergency, goodbye); one that refuses ``max_tokens`` or ``stop`` goes on
without them. With ``takeover`` (LLM_PROVIDER is ``openai`` alone, no chain to fail over to), a turn
the server fails that the receptionist wants is answered by the receptionist
(bot/providers/llm_takeover.py). Deadlines and error mapping are the provider kit's
(bot/providers/kit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import httpx
import openai
from openai import AsyncOpenAI

from bot.conversation import Action, Conversation
from bot.errors import BAD_RESPONSE, EMPTY_RESULT
from bot.logs import kv
from bot.profile import Profile, cached_profile
from bot.providers import llm_history
from bot.providers.kit import Bounds, Edge, HttpPool, quietly
from bot.providers.llm_probe import ServerProbe
from bot.providers.llm_takeover import Takeover
from bot.providers.openai_wire import (
    Round,
    classify,
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
from bot.settings import DEFAULT_SYSTEM_PROMPT
from bot.spoken import SpokenText
from bot.tools import ToolContext, ToolRegistry, business_tools, system_prompt

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("bot.providers.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_TOOL_ROUNDS = 3  # completions per reply: the first, and one after each round of tool results
STOP = ["<|im_start|>", "[INST]", "<<SYS>>", "\nUser:"]  # OpenAI takes at most four
CONTEXT_LENGTH = "context_length"  # StageError code: the history did not fit even trimmed
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
        self.takeover = Takeover(transfer_number=transfer_number, profile=self.profile, clock=clock, enabled=takeover)
        self._client: AsyncOpenAI | None = None
        self._edge = Edge("llm", self.name, timeout=timeout, classify=classify)
        self._pool = HttpPool((base_url or DEFAULT_BASE_URL).rstrip("/") + "/", "llm")
        self.probe = ServerProbe((base_url or DEFAULT_BASE_URL).rstrip("/") + "/models", api_key)
        # what this server has shown it can do (learned from its answers, kept for the process)
        self._use_tools = True  # False once it refuses tools
        self._stream_tools = True  # False once it fails a streamed reply with tools
        self._silent_stream_failures = 0  # streamed replies with tools that ended with no event
        self._params: dict[str, Any] = {"max_tokens": max_tokens, "stop": list(STOP)}
        self._squeeze = 1.0  # of the context the history may use: lowered when the server counts more tokens than estimated
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
        if self.takeover.enabled:
            await self.takeover.receptionist.start()
        self.probe.http = self._pool.open(self._timeout + 1.0)
        self._client = AsyncOpenAI(
            http_client=cast(Any, self._pool.http),  # the SDK takes httpx's client as well as its httpx2
            api_key=self._api_key or "not-needed",
            base_url=self._base_url or DEFAULT_BASE_URL,  # explicit: never read OPENAI_BASE_URL
            max_retries=0,
            timeout=self._timeout + 1.0,  # backstop; the kit's deadlines are the real bound
        )

    async def warm(self) -> None:
        """Open a connection to the API host now, so the first turn has one ready."""
        await self._pool.warm()

    async def close(self) -> None:
        self._pool.http = self.probe.http = None  # the SDK client closes it
        client, self._client = self._client, None
        if client is not None:
            await quietly(client.close())  # closing a pool must not fail shutdown

    def now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        """Stream text deltas (over one or more completions), then any terminal Actions."""
        return self.takeover.reply(conversation, lambda first_s, acted: self._reply(conversation, first_s, acted),
                                   timeout=self._timeout, tools=self._use_tools)

    async def _reply(self, conversation: Conversation, first_s: float, acted: list[str]) -> AsyncGenerator[str | Action, None]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        reply_by = loop.time() + self._reply_s
        now = self.now()
        system = system_prompt(self.profile, now, self._instructions)
        guard = [self._instructions, *(line for line in system.splitlines() if line.startswith(INSTRUCTION_LINES))]
        ctx = ToolContext(conversation, self.profile, now, self._transfer_number)
        history = list(conversation.messages)
        self._pool.used()
        self.last_usage = None
        terminal: list[Action] = []
        spoken = SpokenText(tool_names=self.tools.tools, instructions=guard)
        whole: list[bool] = []  # set once this reply's streamed tool round came back empty: its next rounds go whole
        state = _ReplyState()
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                rnd = Round()
                state.said, state.handover = [], False
                async with contextlib.aclosing(self._complete(self._client, system, history, rnd, reply_by, first_s, conversation.call_id, whole)) as texts:
                    async with contextlib.aclosing(self._spoken(texts, spoken, state, conversation)) as outs:
                        async for out in outs:
                            yield out
                if state.handover:
                    async for item in self.takeover.receptionist.reply(conversation):
                        yield item
                    return
                cut = rnd.finish in ("length", _BUDGET)
                tail = self._round_end(spoken, rnd, cut, conversation.call_id)
                if tail:
                    state.got_text = state.got_text or bool(tail.strip())
                    state.said.append(tail)
                    yield tail
                calls = [] if cut or spoken.stopped else rnd.ordered()
                if not calls:
                    break
                await self._run_tools(calls, "".join(state.said), history, acted, ctx, terminal, conversation.call_id)
            if not state.got_text and not terminal:
                raise self._edge.error(EMPTY_RESULT, "the model returned nothing to say")
            transfer = [a for a in terminal if a.kind == "transfer"]
            for action in transfer or terminal:
                yield action
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise self._edge.map(e) from None

    async def _spoken(self, texts: AsyncGenerator[str, None], spoken: SpokenText, state: _ReplyState,
                      conversation: Conversation) -> AsyncGenerator[str, None]:
        """One round's text as it may be spoken; a refusal of tools hands the turn to the
        receptionist when it wants it (``state.handover``)."""
        async for text in texts:
            if text == _REJECTED:
                state.handover = self.takeover.receptionist.wants_turn(conversation)
                if state.handover:
                    break
                continue
            out = spoken.feed(text)  # "" while a clause is held: still progress for the stage's gap bound
            state.got_text = state.got_text or bool(out.strip())
            state.said.append(out)
            yield out
            if spoken.stopped:  # an invented next turn: stop reading (the server stops generating)
                break

    def _round_end(self, spoken: SpokenText, rnd: Round, cut: bool, call_sid: str) -> str:
        """The text held back at the round's end (only whole sentences when it was cut)."""
        tail = spoken.flush(whole_only=cut)
        if spoken.dropped:
            log.warning("llm text dropped (tool names or instructions read out)", extra=kv(call_sid=call_sid, clauses=spoken.dropped))
        self.last_usage = rnd.usage or self.last_usage
        return tail

    async def _run_tools(self, calls: list[dict[str, str]], said: str, history: list[dict], acted: list[str], ctx: ToolContext,
                         terminal: list[Action], call_sid: str) -> None:
        """The round's tool calls, in order, into the history; a call's action (one of each kind) into ``terminal``."""
        history.append({"role": "assistant", "content": said.strip() or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
        for c in calls:
            acted.append(c["name"])
            result = await self.tools.call(c["name"], c["arguments"], ctx)
            log.info("tool call", extra=kv(call_sid=call_sid, tool=c["name"], ok=not result.content.startswith(("error", "not", "failed"))))
            history.append({"role": "tool", "tool_call_id": c["id"], "content": result.content})
            if result.action is not None and all(a.kind != result.action.kind for a in terminal):
                terminal.append(result.action)

    def adopt_receptionist(self, receptionist: Any) -> None:
        """Use this (started) receptionist for the turns it takes (bot/providers/llm_takeover.py)."""
        self.takeover.adopt(receptionist)

    def _messages(self, system: str, history: list[dict], squeeze: float) -> list[dict]:
        reserve = int(self._params.get("max_tokens") or self._params.get("max_completion_tokens") or 0)
        tool_tokens = self._tool_tokens if self._use_tools else None
        messages, self.last_trimmed = llm_history.fit(system, history, context=int(self._context * squeeze), reserve=reserve,
                                                      tool_tokens=tool_tokens)
        return messages

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
                    text = await self._whole_instead(client, messages, rnd, first_by, refused, whole)
                    if text:
                        yield text
                    return
            except _ToolsRefused:
                yield _REJECTED
            except _Overflow as over:
                overflows += 1
                self._trim_harder(over, overflows, call_sid)
        raise self._edge.error(BAD_RESPONSE, "the server kept refusing the request")

    async def _whole_instead(self, client: AsyncOpenAI, messages: list[dict], rnd: Round, first_by: float,
                             refused: _StreamedTools, whole: list[bool]) -> str:
        """A streamed reply with tools was refused: the round again, non-streamed (and all
        tool turns from now on, once the server has shown it cannot)."""
        rnd.calls.clear()
        text = await self._whole(client, messages, rnd, first_by)
        self._silent_stream_failures += not refused.said
        whole.append(True)
        if refused.said or self._silent_stream_failures >= 2:  # one empty 200 may be a glitch; twice is the server
            self._stream_tools = False
            log.warning("llm server cannot stream replies with tools: tool turns go non-streamed from now on",
                        extra=kv(provider=self.name, model=self._model))
        return text

    def _trim_harder(self, over: _Overflow, overflows: int, call_sid: str) -> None:
        """The history overflowed the context: trim it harder next time (a third time fails)."""
        if overflows > 2:
            raise self._edge.error(CONTEXT_LENGTH, "the history does not fit the model's context even trimmed", retryable=True) from None
        if over.size and over.size < self._context:
            self._context = over.size  # believe the server from now on
        self._squeeze = max(0.25, self._squeeze * 0.7)  # and its count over our estimate
        log.warning("llm context overflowed: trimming harder", extra=kv(call_sid=call_sid, context=self._context, squeeze=round(self._squeeze, 2)))

    async def _streamed(self, client: AsyncOpenAI, messages: list[dict], rnd: Round, first_by: float, reply_by: float) -> AsyncGenerator[str, None]:
        """One streamed completion: SSE read from bytes, one ``json.loads`` per event, under the
        kit's bounds (to the first token, between events, the whole reply: past it, cut not failed)."""
        response = await self._send(client, messages, stream=True, first_by=first_by)
        read = self._edge.read(Bounds(first_by, self._timeout, reply_by, tick_starts=False, first_what="no first token"))
        try:
            try:
                async with read:  # the kit's block form: no generator layer per event
                    async for event in sse_data(response.aiter_bytes()):
                        read.tick()
                        if event == b"[DONE]":
                            break
                        chunk = json.loads(event.decode())  # str: skips json's encoding sniffing
                        rnd.events += 1
                        if isinstance(chunk, dict) and chunk.get("error") is not None:
                            if self._use_tools and not read.started and refuses_streamed_tools(error_text(chunk)):
                                raise _StreamedTools
                            raise self._edge.error(BAD_RESPONSE, "error event in the stream")
                        texts = parse_chunk(chunk, rnd)
                        if texts or rnd.calls:
                            read.start()
                        for text in texts:
                            read.hold()
                            yield text
                            read.resume()
                        if read.past_total():
                            break
            except (httpx.TransportError, openai.APIConnectionError):
                if self._use_tools and rnd.events == 0:  # a 200 that broke off before any event
                    raise _StreamedTools(said=False) from None
                raise
            if read.cut:
                rnd.finish = _BUDGET
                log.warning("llm reply cut: over its time budget", extra=kv(provider=self.name, reply_s=self._reply_s))
            elif self._use_tools and rnd.events == 0:  # a 200 with nothing in it
                raise _StreamedTools(said=False)
        finally:
            await quietly(response.aclose())

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
                return await self._edge.bounded(self._post(client, body, stream), by=first_by)
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
        raise self._edge.error(BAD_RESPONSE, "the server kept refusing the request's parameters")

    @staticmethod
    async def _post(client: AsyncOpenAI, body: dict[str, Any], stream: bool) -> Any:
        if stream:
            return await client.post("/chat/completions", cast_to=httpx.Response, body=body, stream=True)
        return await client.post("/chat/completions", cast_to=object, body=body)


_REJECTED = "\x00tools-rejected"  # in-band marker from _complete: the server refused tools
_BUDGET = "budget"  # Round.finish when the reply ran out of LLM_REPLY_S


@dataclass
class _ReplyState:
    """One reply across its tool rounds: whether anything was said; the round's text and handover."""

    got_text: bool = False
    said: list[str] = field(default_factory=list)
    handover: bool = False
