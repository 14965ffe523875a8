"""The receptionist's turns inside an LLM adapter: a piece any LLM vendor can compose.

Three rules, whatever the model's server:
- a message form under way (``Conversation.pending_message``) stays with the receptionist,
  and so do the turns it wants when the server cannot run tools;
- with ``enabled`` (the LLM is not in a failover chain with a receptionist), a turn the
  server fails before it said or did anything, that the receptionist wants (now, or for
  something the caller asked earlier in the call), is answered by the receptionist, so a
  caller can still leave a message while the server is down;
- such a turn gives the server only ``SHARE`` of its first-token bound, leaving the
  receptionist time to answer within the stage budget.

A failover chain hands its started receptionist over (``adopt``) so the fallback reads
callers by meaning (its encoder loaded) and not by keywords.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import Any

from bot.conversation import Action, Conversation
from bot.errors import StageError
from bot.logs import kv
from bot.profile import Profile

log = logging.getLogger("bot.providers.openai")

SHARE = 0.7  # of the first-token bound the server gets on a turn the receptionist would take over

# answer(first_s, acted) -> the model's reply; ``acted`` collects the tools it ran
Answer = Callable[[float, list[str]], AsyncGenerator[str | Action, None]]


class Takeover:
    def __init__(self, *, transfer_number: str, profile: Profile, clock: Callable[[], datetime] | None, enabled: bool) -> None:
        self._transfer_number, self._profile, self._clock = transfer_number, profile, clock
        self.enabled = enabled
        self._receptionist: Any = None

    def adopt(self, receptionist: Any) -> None:
        self._receptionist = receptionist

    @property
    def receptionist(self) -> Any:
        if self._receptionist is None:
            from bot.providers.receptionist import Receptionist

            self._receptionist = Receptionist(transfer_number=self._transfer_number, profile=self._profile, clock=self._clock)
        return self._receptionist

    def wants(self, conversation: Conversation) -> bool:
        return bool(self.receptionist.wants_turn(conversation))

    def wanted(self, conversation: Conversation) -> bool:
        """Would the receptionist take this turn, or did the caller ask it something it would
        have taken earlier in the call (a message the model was still taking when its server
        failed)?"""
        if self.wants(conversation):
            return True
        earlier = [m for m in conversation.messages[:-1] if m.get("role") == "user"][-6:]
        return any(self.wants(Conversation(messages=[m])) for m in earlier)

    async def reply(self, conversation: Conversation, answer: Answer, *, timeout: float, tools: bool) -> AsyncIterator[str | Action]:
        """The turn: the receptionist's, the model's (``answer``), or the model's failed
        and then the receptionist's."""
        if conversation.pending_message() is not None or (not tools and self.wants(conversation)):
            async for item in self.receptionist.reply(conversation):  # its message form, under way or wanted
                yield item
            return
        spoke = False
        first_s = timeout * SHARE if self.enabled and self.wants(conversation) else timeout
        acted: list[str] = []  # tools run in this reply (a message saved is not taken twice)
        try:
            async with contextlib.aclosing(answer(first_s, acted)) as items:
                async for item in items:
                    spoke = spoke or isinstance(item, Action) or bool(item.strip())
                    yield item
        except StageError as err:
            if spoke or acted or not self.enabled or not self.wanted(conversation):
                raise
            log.warning("llm failed: the receptionist takes this turn", extra=kv(call_sid=conversation.call_id, code=err.code))
        else:
            return
        async for item in self.receptionist.reply(conversation):
            yield item
