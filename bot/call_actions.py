"""The one action path of a call, mixed into ``CallSession``: the receptionist and the
LLM's tools emit the same ``Action``s and they are carried out here. A message is
committed (``store.save_message``) when the dialogue asks, which is before its reply says
the message was passed on, and only once the turn is confirmed (``Conversation.perform``
waits for a speculative turn's gate). Transfer and hang-up run after the caller heard the
reply. A form the caller left half-way is kept as an incomplete message at the end, on
both dialogue paths through ``_save_pending``: the receptionist keeps its form in
``conversation.state``; the LLM has none, so ``heard_message`` reads it from the
transcript (the caller's words from the model's first question for message details on).
``outcome`` says what the call came to, for the call record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from bot.language import name_in, phone_in
from bot.logs import kv
from bot.profile import Profile
from bot.providers.base import Action, Conversation
from bot.redact import mask_number
from bot.store.api import NewMessage, Store

log = logging.getLogger("bot.call")

SAVED_UPTO = "message_saved_upto"  # Conversation.state: the transcript before it is a saved message's
# The model is taking a message: it says so, or asks for a name or a number to call back.
_TAKING = re.compile(
    r"\b(?:(?:take|leave|pass on) (?:a|the|your) message|message for|(?:your|the) (?:full )?name|who(?:'s| is) calling"
    r"|(?:call ?back|phone|contact|best) number|number (?:to|we|i|for)|call you back|reach you)\b",
    re.I,
)
ABOUT_MAX = 2000  # characters of the caller's words kept


def heard_message(conversation: Conversation) -> dict | None:
    """For a dialogue that keeps no form of its own (the LLM's): the message the caller was
    giving, from the transcript since the last saved message. It starts at the model's
    first words that take a message; the caller's turn before them (the request) and every
    turn after are what they said. None when no message was being taken."""
    if "receptionist" in conversation.state:  # it keeps its own form (pending_message)
        return None
    msgs = conversation.messages[conversation.state.get(SAVED_UPTO, 0):]
    start = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant" and _TAKING.search(str(m.get("content") or ""))), None)
    if start is None:
        return None
    request = [m for m in msgs[:start] if m.get("role") == "user"][-1:]
    said = [str(m.get("content") or "").strip() for m in request + [m for m in msgs[start:] if m.get("role") == "user"]]
    said = [t for t in said if t]
    numbers = [n for n, _ in map(phone_in, said) if n]  # 7 to 15 digits: a longer run is never a number
    name = next((n for n in map(name_in, said) if n), "")
    return {"name": name, "callback_number": numbers[-1] if numbers else "", "about": " ".join(said)[:ABOUT_MAX], "urgent": False}


class CallActions:
    """Mixin for ``CallSession`` (uses its profile, store, conversation and ``_finish``)."""

    # what CallSession provides
    call_sid: str
    profile: Profile
    _clock: Callable[[], datetime] | None
    transfer_number: str
    store: Store
    conversation: Conversation
    outcome: str
    messages_saved: int
    transfer_purpose: str

    async def _finish(self, prompt: str | None, *, transfer: bool, clear: bool = False, number: str = "", by: str = "bot", decided: bool = False) -> None:
        raise NotImplementedError

    def _now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    def _front_desk(self) -> str:
        """Where "a person" goes now: TRANSFER_NUMBER, else the profile's front desk in opening hours."""
        return self.transfer_number or self.profile.transfer_number("front_desk", self._now())

    async def _act(self, action: Action) -> bool:
        """A side effect the dialogue needs done before it goes on (Conversation.perform
        has already waited for the turn to be confirmed): commit a message."""
        if action.kind != "take_message" or action.message is None:
            log.warning("unexpected immediate action", extra=kv(call_sid=self.call_sid, action=action.kind))
            return False
        try:
            msg_id = await self.store.save_message(action.message)
        except Exception as exc:  # noqa: BLE001 - the caller is told it failed; nothing leaks
            log.error("message not saved", extra=kv(call_sid=self.call_sid, error=type(exc).__name__))
            return False
        self.messages_saved += 1
        self.conversation.state.pop("pending_message", None)
        self.conversation.state[SAVED_UPTO] = len(self.conversation.messages)
        if self.outcome not in ("emergency", "transferred"):
            self.outcome = "emergency" if action.reason == "emergency" else "message"
        log.info("message saved", extra=kv(call_sid=self.call_sid, message_id=msg_id, urgent=action.message.urgent))
        return True

    async def _carry_out(self, action: Action) -> None:
        """A terminal action, once the caller has heard the reply: transfer or hang up."""
        if action.kind == "transfer":
            number = action.number or self._front_desk()
            if action.purpose == "emergency":
                self.outcome = "emergency"
            self.transfer_purpose = action.purpose or ""
            log.info("transfer", extra=kv(call_sid=self.call_sid, purpose=action.purpose or None, to=mask_number(number)))
            await self._finish(None if number else "goodbye", transfer=bool(number), number=number, by="transfer" if number else "bot")
        else:
            await self._finish(None, transfer=False)

    async def _save_pending(self) -> None:
        """The caller left mid-form: keep what was heard as an incomplete message (the
        receptionist's form, or what the caller told the LLM)."""
        pending = self.conversation.pending_message() or heard_message(self.conversation)
        if not pending or not (pending.get("name") or pending.get("callback_number")):
            return
        msg = NewMessage(
            call_sid=self.call_sid, caller=self.conversation.caller, name=pending.get("name", ""),
            callback_number=pending.get("callback_number", ""), about=pending.get("about", ""),
            urgent=bool(pending.get("urgent")), complete=False,
        )
        if await self._act(Action("take_message", "caller left mid-form", message=msg)):
            log.info("incomplete message kept", extra=kv(call_sid=self.call_sid))

