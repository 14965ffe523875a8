"""What of a long call's history goes to the model: the latest turns that fit its context.

A small local model has a 4k context; a half-hour call does not fit. The system prompt
(always sent) and the tools' schemas take their share, the reply its ``max_tokens``;
the messages get the rest. Turns are kept whole from the newest back: a turn is a
caller's message and everything after it (the replies, an assistant's tool calls and
their results, which a server refuses to see apart). The newest turn is always kept.

Token counts are estimated from characters (about three per token, on the safe side for
English and JSON): no tokenizer is loaded, and a server that says the estimate was too
low gets a harder trim (bot/providers/openai_llm.py).
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 3.0
PER_MESSAGE = 6  # role markers and separators a chat template adds to each message


def tokens(obj: Any) -> int:
    """An estimate of the tokens ``obj`` (a message, a list of them, a schema) costs."""
    if isinstance(obj, list):
        return sum(tokens(o) for o in obj)
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return int(len(text) / CHARS_PER_TOKEN) + (PER_MESSAGE if isinstance(obj, dict) else 0)


def turns(messages: list[dict]) -> list[list[dict]]:
    """``messages`` cut before each caller message (tool calls stay with their results)."""
    out: list[list[dict]] = []
    for m in messages:
        if m.get("role") == "user" or not out:
            out.append([])
        out[-1].append(m)
    return out


def trim(messages: list[dict], budget: int) -> tuple[list[dict], int]:
    """The newest whole turns of ``messages`` within ``budget`` tokens (the newest turn
    even if it alone is over), and how many messages were left out."""
    groups = turns(messages)
    kept: list[list[dict]] = []
    used = 0
    for group in reversed(groups):
        cost = tokens(group)
        if kept and used + cost > budget:
            break
        kept.append(group)
        used += cost
    out = [m for group in reversed(kept) for m in group]
    while out and out[0].get("role") == "tool":  # never a result without its call
        out.pop(0)
    return out, len(messages) - len(out)


def fit(system: str, history: list[dict], *, context: int, reserve: int, tool_tokens: int | None) -> tuple[list[dict], int]:
    """The system prompt and the newest ``history`` that fits ``context`` tokens less the
    reply's ``reserve`` and the tools' schemas (``tool_tokens``; None: no tools are offered,
    and the history's tool calls and results are left out too); and how many were left out."""
    head = {"role": "system", "content": system}
    if tool_tokens is None:
        history = [m for m in history if m.get("role") != "tool" and not m.get("tool_calls")]
    budget = context - reserve - tokens(head) - (tool_tokens or 0) - 32
    kept, left_out = trim(history, max(0, budget))
    return [head, *kept], left_out
