"""OpenAI (or any OpenAI-compatible server) chat completions, streamed, with tools.

The system prompt is built from the business profile with the local date and time
(bot/tools.py). The reply streams as text deltas; tool calls arrive in fragments
(``delta.tool_calls[i]``: id and name first, then ``function.arguments`` pieces by
index), are run through the tool registry, and their results go back to the model
in a further streamed completion for its next words. Terminal actions (transfer,
hang-up) come out as ``Action``s after the text. A server that rejects tools is logged
as a WARNING; from then on the receptionist's message form takes the turns that need
an action. ``timeout`` (LLM_TIMEOUT) bounds the wait for the first token and every gap
between chunks. Every failure leaves as ``StageError``; cancellation passes through.
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

from bot.errors import (
    BAD_RESPONSE,
    EMPTY_RESULT,
    RATE_LIMITED,
    TIMEOUT,
    UPSTREAM_ERROR,
    StageError,
    code_for_status,
)
from bot.logs import kv
from bot.profile import Profile, cached_profile
from bot.providers.base import Action, Conversation
from bot.providers.warm import PoolWarmer, http_client
from bot.settings import DEFAULT_SYSTEM_PROMPT
from bot.stall import Stall
from bot.tools import ToolContext, ToolRegistry, business_tools, system_prompt

if TYPE_CHECKING:
    from bot.settings import Settings

T = TypeVar("T")
log = logging.getLogger("bot.providers.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_TOOL_ROUNDS = 3  # completions per reply: the first, and one after each round of tool results


class OpenAILLM:
    """LLM adapter over ``AsyncOpenAI.post("/chat/completions", stream=True)``, its body read as SSE bytes."""

    name = "openai"

    def __init__(
        self, *, api_key: str = "", base_url: str = "", model: str = "gpt-4o-mini", timeout: float = 8.0,
        instructions: str = DEFAULT_SYSTEM_PROMPT, transfer_number: str = "", profile: Profile | None = None,
        clock: Callable[[], datetime] | None = None, tools: ToolRegistry | None = None,
    ) -> None:
        """``base_url``: any OpenAI-compatible server (empty: OpenAI's own); ``timeout``: to
        the first token and between chunks, in seconds; ``instructions``: the system prompt's
        opening; ``transfer_number``: where transfers go (empty: the profile's numbers);
        ``profile``: the business (default: the bundled property office); ``clock``: the
        time now, for tests; ``tools``: the model's tools (default: the business tools)."""
        self._api_key = api_key
        self._base_url = base_url
        self._model = model
        self._timeout = timeout
        self._instructions = instructions
        self._transfer_number = transfer_number
        self.profile = profile or cached_profile()
        self._clock = clock
        self.tools = tools or business_tools()
        self._client: AsyncOpenAI | None = None
        self._http: httpx.AsyncClient | None = None
        self._warmer = PoolWarmer((base_url or DEFAULT_BASE_URL).rstrip("/") + "/")
        self._use_tools = True  # dropped for good if the server rejects them
        self._fallback: Any = None  # the receptionist, once tools are rejected
        self.last_usage: dict[str, int] | None = None  # token counts of the last reply, if sent

    @classmethod
    def from_settings(
        cls, s: Settings, *, profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
    ) -> OpenAILLM:
        return cls(
            api_key=s.openai_api_key, base_url=s.openai_base_url, model=s.openai_model, timeout=s.llm_timeout,
            instructions=s.system_prompt, transfer_number=s.transfer_number,
            profile=profile or cached_profile(s.business_file), clock=clock,
        )

    async def start(self) -> None:
        if self._client is not None:
            return
        self._http = http_client(self._timeout + 1.0)
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
        self._http = None
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
        assert self._client is not None
        if not self._use_tools and self._receptionist().wants_turn(conversation):
            async for item in self._receptionist().reply(conversation):
                yield item
            return
        now = self.now()
        messages: list[dict] = [{"role": "system", "content": system_prompt(self.profile, now, self._instructions)},
                                *conversation.messages]
        ctx = ToolContext(conversation, self.profile, now, self._transfer_number)
        self._warmer.used()
        self.last_usage = None
        got_text = False
        terminal: list[Action] = []
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                calls: dict[int, dict[str, str]] = {}
                said: list[str] = []
                handover = False
                async with contextlib.aclosing(self._complete(self._client, messages, calls)) as texts:
                    async for text in texts:
                        if text == _REJECTED:
                            handover = self._receptionist().wants_turn(conversation)
                            if handover:
                                break
                            continue
                        got_text = got_text or bool(text.strip())
                        said.append(text)
                        yield text
                if handover:
                    async for item in self._receptionist().reply(conversation):
                        yield item
                    return
                if not calls:
                    break
                ordered = [calls[i] for i in sorted(calls)]
                messages.append({"role": "assistant", "content": "".join(said) or None, "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in ordered]})
                for c in ordered:
                    result = await self.tools.call(c["name"], c["arguments"], ctx)
                    log.info("tool call", extra=kv(call_sid=conversation.call_id, tool=c["name"], ok=not result.content.startswith(("error", "not", "failed"))))
                    messages.append({"role": "tool", "tool_call_id": c["id"], "content": result.content})
                    if result.action is not None and all(a.kind != result.action.kind for a in terminal):
                        terminal.append(result.action)
            if not got_text and not terminal:
                raise self._error(EMPTY_RESULT, "the model returned no content")
            transfer = [a for a in terminal if a.kind == "transfer"]
            for action in transfer or terminal:
                yield action
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise self._map(e) from None

    def _receptionist(self):
        if self._fallback is None:
            from bot.providers.receptionist import Receptionist

            self._fallback = Receptionist(transfer_number=self._transfer_number, profile=self.profile, clock=self._clock)
        return self._fallback

    async def _complete(self, client: AsyncOpenAI, messages: list[dict], calls: dict[int, dict[str, str]]) -> AsyncGenerator[str, None]:
        """One streamed completion: yields text; collects tool-call fragments into ``calls``.

        The SDK sends the request (auth, base URL, status errors mapped to its exception
        types); the body's server-sent events are read here from bytes, one ``json.loads``
        per event, with one lazy time bound for the whole stream (bot/stall.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        response, rejected = await self._open(client, messages, deadline)
        try:
            if rejected:
                yield _REJECTED
            stall = Stall(deadline, self._timeout, tick_starts=False)
            try:
                async with stall:
                    async for event in _sse_data(response.aiter_bytes()):
                        stall.tick()
                        if event == b"[DONE]":
                            break
                        texts = self._parse(json.loads(event.decode()), calls)  # str: skips json's encoding sniffing
                        if texts or calls:
                            stall.start()
                        for text in texts:
                            stall.hold()
                            yield text
                            stall.resume()
            except TimeoutError:
                if not stall.expired():
                    raise
                what = "stream stalled" if stall.started else "no first token"
                raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None
        finally:
            await _quietly(response.aclose())

    async def _open(self, client: AsyncOpenAI, messages: list[dict], deadline: float) -> tuple[httpx.Response, bool]:
        """Send the streamed request through the SDK's generic ``post`` (auth, base URL,
        status errors; no per-request transform of the typed params, no model per chunk):
        the open response, and whether the server refused tools (then it warns and goes
        on without them)."""
        body: dict[str, Any] = {"model": self._model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        if self._use_tools:
            body["tools"] = self.tools.schemas()
        try:
            return await self._bounded(self._post(client, body), deadline, "no reply"), False
        except openai.BadRequestError as e:
            if not (self._use_tools and "tool" in str(e.message).lower()):
                raise
        self._use_tools = False  # e.g. an Ollama model without tool support
        log.warning("llm server rejected tools: the receptionist takes messages, transfers and goodbyes",
                    extra=kv(provider=self.name, model=self._model))
        plain = [m for m in messages if m.get("role") != "tool" and not m.get("tool_calls")]
        body = {"model": self._model, "messages": plain, "stream": True}
        return await self._bounded(self._post(client, body), deadline, "no reply"), True

    @staticmethod
    async def _post(client: AsyncOpenAI, body: dict[str, Any]) -> httpx.Response:
        return await client.post("/chat/completions", cast_to=httpx.Response, body=body, stream=True)

    async def _bounded(self, aw: Awaitable[T], deadline: float, what: str) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await aw
        except TimeoutError:
            raise self._error(TIMEOUT, f"{what} within {self._timeout:g} s") from None

    def _parse(self, chunk: Any, calls: dict[int, dict[str, str]]) -> list[str]:
        """Text deltas of one chunk (a decoded SSE event). Tool-call fragments are joined by
        their ``index``: the first carries the id and name, later ones pieces of
        ``function.arguments``. An ``error`` event fails the stage, as the SDK would."""
        if not isinstance(chunk, dict):
            raise self._error(BAD_RESPONSE, "stream chunk is not an object")
        if chunk.get("error") is not None:
            raise self._error(BAD_RESPONSE, "error event in the stream")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise self._error(BAD_RESPONSE, "stream chunk has no choices")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.last_usage = {k: v for k in ("prompt_tokens", "completion_tokens") if isinstance(v := usage.get(k), int)}
        out: list[str] = []
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.append(content)
            for pos, call in enumerate(delta.get("tool_calls") or []):
                if not isinstance(call, dict):
                    continue
                index = call.get("index")
                slot = calls.setdefault(index if isinstance(index, int) else pos, {"id": "", "name": "", "arguments": ""})
                fn = call.get("function")
                if not isinstance(fn, dict):
                    fn = {}
                if isinstance(call.get("id"), str) and call["id"]:
                    slot["id"] = call["id"]
                if isinstance(fn.get("name"), str) and fn["name"]:
                    slot["name"] = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    slot["arguments"] += fn["arguments"]
        for i, slot in calls.items():
            slot["id"] = slot["id"] or f"call_{i}"
        return out

    def _map(self, e: Exception) -> StageError:
        if isinstance(e, (TimeoutError, openai.APITimeoutError)):
            return self._error(TIMEOUT, "the HTTP client timed out")
        if isinstance(e, openai.RateLimitError):
            return self._error(RATE_LIMITED, "HTTP 429")
        if isinstance(e, openai.APIStatusError):
            return self._error(code_for_status(e.status_code), f"HTTP {e.status_code}")
        if isinstance(e, openai.APIConnectionError):
            return self._error(UPSTREAM_ERROR, "connection failed")
        if isinstance(e, openai.APIError):
            return self._error(BAD_RESPONSE, "error event in the stream")
        if isinstance(e, (ValueError, TypeError, AttributeError, KeyError, IndexError)):
            return self._error(BAD_RESPONSE, f"unreadable stream ({type(e).__name__})")
        return self._error(UPSTREAM_ERROR, f"unexpected failure ({type(e).__name__})")

    def _error(self, code: str, message: str) -> StageError:
        return StageError("llm", code, message, provider=self.name)


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event, from the body's bytes as they arrive.

    One ``data:`` line per event, as OpenAI sends them (a multi-line event's lines are
    joined with newlines, per the SSE rules); other fields and comments are skipped.
    """
    buf = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buf = buf + chunk if buf else chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
    if buf.startswith(b"data:"):
        data.append(buf[5:].lstrip(b" "))
    if data:
        yield b"\n".join(data)


async def _quietly(aw: Awaitable[object]) -> None:
    try:
        await aw
    except Exception:  # noqa: BLE001 - releasing a connection must not mask the real outcome
        pass


_REJECTED = "\x00tools-rejected"  # in-band marker from _complete: the server refused tools
