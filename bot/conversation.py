"""One caller's dialogue and the actions it asks of the call: engine types, not a provider's.

The LLM adapters, the receptionist, the tools and the call all speak these; they live
apart from the provider protocols (bot/providers/base.py) so that a provider module needs
no store and the engine needs no provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from bot.store.api import NewMessage

PENDING_MESSAGE = "pending_message"  # Conversation.state key: the message form heard so far

# Set by the call for each turn: the event that confirms it (a speculative turn's gate).
# Side effects wait for it, so a speculative turn that is dropped never writes or acts.
TURN_CONFIRMED: ContextVar[asyncio.Event | None] = ContextVar("turn_confirmed", default=None)


async def turn_confirmed() -> None:
    """Return once the current turn is confirmed (at once outside a speculative turn)."""
    gate = TURN_CONFIRMED.get()
    if gate is not None and not gate.is_set():
        await gate.wait()


@dataclass(frozen=True)
class Action:
    """Something the dialogue asks the call to do. The receptionist and the LLM's tools
    emit the same kinds; the call carries them out through one path:

    - ``take_message``: committed through ``Conversation.act`` *before* the reply says it
      was passed on (``message`` holds it);
    - ``transfer`` (to ``number``, resolved from the profile for ``purpose``) and
      ``hangup``: yielded after the reply text; run once the caller has heard it.
    """

    kind: Literal["transfer", "hangup", "take_message"]
    reason: str = ""
    purpose: str = ""  # transfer: "front_desk", "emergency", ...
    number: str = ""  # transfer: where to dial ("" = the call's default transfer number)
    message: NewMessage | None = None  # take_message


@dataclass
class Conversation:
    """One caller's dialogue: OpenAI-style messages plus per-provider state.

    ``messages`` never holds the system prompt; LLM adapters prepend it.
    ``state`` is a scratch dict that stateful dialogues (the receptionist) keep
    per call, keyed by their own names.
    """

    call_id: str = ""
    caller: str = ""  # caller number/URI, for the receptionist's message form; never logged
    messages: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    # Runs a side-effecting action now (take_message) and says whether it worked; set by
    # whoever runs the dialogue (the call, the chat CLI). None: nothing can be saved.
    act: Callable[[Action], Awaitable[bool]] | None = field(default=None, repr=False, compare=False)

    async def perform(self, action: Action) -> bool:
        """Carry out a side effect, once the turn is confirmed; False if it cannot be done."""
        if self.act is None:
            return False
        await turn_confirmed()
        return await self.act(action)

    def pending_message(self) -> dict | None:
        """What the caller has given of a message not yet taken (name, callback_number,
        about, urgent), so the call can keep it as incomplete if they leave."""
        return self.state.get(PENDING_MESSAGE)

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_assistant(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
