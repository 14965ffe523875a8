"""The OpenAI chat-completions wire, as the adapter reads it: server-sent events from bytes,
one chunk's text and tool-call fragments, a whole (non-streamed) reply, and what a
server's error says about what it cannot do.

OpenAI-compatible servers differ in what they accept; the adapter learns it from their
answers, not their names (README, "LLM server"): an error that names streaming and tools
(llama.cpp's Python server: "Automatic streaming tool choice is not supported"), one
that names the context length (``context_length_exceeded``, "exceeds the available
context size"), or one that names a parameter it does not take (``max_tokens`` on newer
OpenAI models, ``stop``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai

from bot.errors import BAD_RESPONSE, TIMEOUT, UPSTREAM_ERROR

_STREAM_TOOLS = re.compile(r"stream", re.IGNORECASE)
_TOOLS = re.compile(r"tool|function", re.IGNORECASE)
_CONTEXT = re.compile(r"context.{0,20}(?:length|window|size)|(?:exceed|maximum).{0,40}context|n_ctx|too many tokens", re.IGNORECASE)
_CONTEXT_SIZE = re.compile(r"(?:context length is|context window of|n_ctx\W*)\s*(\d{3,7})", re.IGNORECASE)


@dataclass
class Round:
    """What one completion gave besides its text: tool calls joined by index, why it
    finished (``length`` = the token limit), token counts."""

    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: str | None = None
    usage: dict[str, int] | None = None
    events: int = 0  # data events read (a stream that ends with none was never answered)

    def ordered(self) -> list[dict[str, str]]:
        for i, slot in self.calls.items():
            slot["id"] = slot["id"] or f"call_{i}"
        return [self.calls[i] for i in sorted(self.calls)]


def error_text(body: Any) -> str:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}`` or a
    bare string), "" if there is none."""
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        return " ".join(str(err.get(k) or "") for k in ("message", "code", "type")).strip()
    return str(err or "")


def refuses_streamed_tools(message: str) -> bool:
    """The server says it cannot stream a reply that may call tools."""
    return bool(_STREAM_TOOLS.search(message) and _TOOLS.search(message))


def refuses_tools(message: str) -> bool:
    return bool(_TOOLS.search(message)) and not is_context_overflow(message)


def is_context_overflow(message: str) -> bool:
    return bool(_CONTEXT.search(message))


def context_size(message: str) -> int | None:
    """The context length an overflow error names, if it names one."""
    m = _CONTEXT_SIZE.search(message)
    return int(m.group(1)) if m else None


def unsupported_param(message: str, params: tuple[str, ...]) -> str | None:
    """Which of ``params`` a 400 says the server does not take (e.g. newer OpenAI models
    refuse ``max_tokens`` for ``max_completion_tokens``), None if none is named."""
    low = message.lower()
    if is_context_overflow(message) or not any(w in low for w in ("unsupported", "not supported", "unrecognized", "unknown", "extra", "not permitted", "invalid")):
        return None
    return next((p for p in params if p in low), None)


def parse_chunk(chunk: Any, into: Round) -> list[str]:
    """Text deltas of one streamed chunk. Tool-call fragments are joined by their
    ``index``: the first carries the id and name, later ones pieces of ``arguments``.
    Raises ValueError for a chunk of the wrong shape."""
    if not isinstance(chunk, dict):
        raise ValueError("stream chunk is not an object")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ValueError("stream chunk has no choices")
    _usage(chunk, into)
    out: list[str] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("finish_reason"), str):
            into.finish = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(content)
        _tool_calls(delta.get("tool_calls"), into)
    return out


def parse_message(body: Any, into: Round) -> str:
    """The text of a whole (non-streamed) reply; its tool calls go into ``into``.
    Raises ValueError for a body of the wrong shape."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise ValueError("reply has no choices")
    choice = body["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("reply has no message")
    _usage(body, into)
    if isinstance(choice.get("finish_reason"), str):
        into.finish = choice["finish_reason"]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        _tool_calls([{**c, "index": i} for i, c in enumerate(calls) if isinstance(c, dict)], into)
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _usage(obj: dict, into: Round) -> None:
    usage = obj.get("usage")
    if isinstance(usage, dict):
        into.usage = {k: v for k in ("prompt_tokens", "completion_tokens") if isinstance(v := usage.get(k), int)}


def _tool_calls(calls: Any, into: Round) -> None:
    if not isinstance(calls, list):
        return
    for pos, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        index = call.get("index")
        slot = into.calls.setdefault(index if isinstance(index, int) else pos, {"id": "", "name": "", "arguments": ""})
        raw = call.get("function")
        fn: dict = raw if isinstance(raw, dict) else {}
        if isinstance(call.get("id"), str) and call["id"]:
            slot["id"] = call["id"]
        if isinstance(fn.get("name"), str) and fn["name"]:
            slot["name"] = fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str):
            slot["arguments"] += args
        elif isinstance(args, dict):  # some servers send the object itself
            slot["arguments"] += json.dumps(args)


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
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


def classify(e: BaseException) -> tuple[str, str] | None:
    """The SDK's own exception types, for the provider kit's ``Edge`` (it maps the rest):
    its timeout is a connection error, and an error event has no status."""
    if isinstance(e, openai.APITimeoutError):
        return TIMEOUT, "the HTTP client timed out"
    if isinstance(e, openai.APIConnectionError):
        return UPSTREAM_ERROR, "connection failed"
    if isinstance(e, openai.APIError) and not isinstance(e, openai.APIStatusError):
        return BAD_RESPONSE, "error event in the stream"
    return None
