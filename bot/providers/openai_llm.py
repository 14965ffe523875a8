"""OpenAI (or any OpenAI-compatible server) chat completions, streamed.

The reply streams as text deltas; two function tools let a real model act on the
call (``transfer_call``, ``end_call``), surfacing as ``Action``s after the text.
``settings.llm_timeout`` bounds the wait for the first token and every gap between
chunks; the consumer's own time between pulls is not counted. Every failure
leaves as ``StageError``; ``asyncio.CancelledError`` passes through untouched.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, TypeVar

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
from bot.providers.base import Action, Conversation
from bot.providers.warm import PoolWarmer, pool_limits
from bot.settings import Settings

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_NO_PARAMS = {"type": "object", "properties": {}, "required": []}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "transfer_call",
            "description": "Transfer the caller to a person. Use when they ask for a human or you cannot help.",
            "parameters": _NO_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "end_call",
            "description": "Hang up, after saying goodbye, once the caller has what they need.",
            "parameters": _NO_PARAMS,
        },
    },
]
TOOL_ACTIONS = {"transfer_call": "transfer", "end_call": "hangup"}


class OpenAILLM:
    """LLM adapter over ``AsyncOpenAI.chat.completions.create(stream=True)``."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: AsyncOpenAI | None = None
        self._http: httpx.AsyncClient | None = None
        self._warmer = PoolWarmer((settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/") + "/")
        self._use_tools = True  # dropped for good if the server rejects them
        self.last_usage: dict[str, int] | None = None  # token counts of the last reply, if sent

    async def start(self) -> None:
        if self._client is not None:
            return
        s = self._settings
        self._http = httpx.AsyncClient(timeout=s.llm_timeout + 1.0, limits=pool_limits())
        self._client = AsyncOpenAI(
            http_client=self._http,
            api_key=s.openai_api_key or "not-needed",
            base_url=s.openai_base_url or DEFAULT_BASE_URL,  # explicit: never read OPENAI_BASE_URL
            max_retries=0,
            timeout=s.llm_timeout + 1.0,  # backstop; asyncio timeouts below are the real bound
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

    async def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        """Stream text deltas, then any Actions the model asked for."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        s = self._settings
        messages = [{"role": "system", "content": s.system_prompt}, *conversation.messages]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.llm_timeout
        self._warmer.used()
        stream: Any = None
        self.last_usage = None
        try:
            stream = await self._open(self._client, messages, deadline)
            tools: dict[int, str] = {}
            got_text = False
            while True:
                first = not got_text and not tools
                bound = deadline if first else loop.time() + s.llm_timeout
                what = "no first token" if first else "stream stalled"
                chunk = await self._bounded(_anext_or_none(stream), bound, what)
                if chunk is None:
                    break
                for text in self._parse(chunk, tools):
                    got_text = got_text or bool(text.strip())
                    yield text
            actions = _actions(tools)
            if not got_text and not actions:
                raise self._error(EMPTY_RESULT, "the model returned no content")
            for action in actions:
                yield action
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise self._map(e) from None
        finally:
            if stream is not None:
                await _quietly(stream.close())

    async def _open(self, client: AsyncOpenAI, messages: list[dict], deadline: float) -> Any:
        """Start the streamed request; retry once without tools if the server refuses them."""
        kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}}
        if self._use_tools:
            kwargs["tools"] = TOOLS
        create = client.chat.completions.create
        try:
            return await self._bounded(
                create(model=self._settings.openai_model, messages=messages, stream=True, **kwargs),
                deadline,
                "no reply",
            )
        except openai.BadRequestError as e:
            if not (self._use_tools and "tool" in str(e.message).lower()):
                raise
        self._use_tools = False  # e.g. an Ollama model without tool support
        return await self._bounded(
            create(model=self._settings.openai_model, messages=messages, stream=True), deadline, "no reply"
        )

    async def _bounded(self, aw: Awaitable[T], deadline: float, what: str) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await aw
        except TimeoutError:
            raise self._error(TIMEOUT, f"{what} within {self._settings.llm_timeout:g} s") from None

    def _parse(self, chunk: Any, tools: dict[int, str]) -> list[str]:
        """Text deltas of one chunk; tool-call names are collected into ``tools``."""
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise self._error(BAD_RESPONSE, "stream chunk has no choices")
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            counts = {k: getattr(usage, k, None) for k in ("prompt_tokens", "completion_tokens")}
            self.last_usage = {k: v for k, v in counts.items() if isinstance(v, int)}
        out: list[str] = []
        for choice in choices:
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if isinstance(content, str) and content:
                out.append(content)
            for pos, call in enumerate(getattr(delta, "tool_calls", None) or []):
                index = getattr(call, "index", None)
                name = getattr(getattr(call, "function", None), "name", None)
                if isinstance(name, str) and name:
                    tools[index if isinstance(index, int) else pos] = name
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


async def _anext_or_none(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


async def _quietly(aw: Awaitable[object]) -> None:
    try:
        await aw
    except Exception:  # noqa: BLE001 - releasing a connection must not mask the real outcome
        pass


def _actions(tools: dict[int, str]) -> list[Action]:
    out: list[Action] = []
    for index in sorted(tools):
        kind = TOOL_ACTIONS.get(tools[index])
        if kind and all(a.kind != kind for a in out):
            out.append(Action(kind, reason="model tool call"))  # type: ignore[arg-type]
    return out
