"""The one action path of a call, mixed into ``CallSession``: the receptionist and the
LLM's tools emit the same ``Action``s and they are carried out here. A message is
committed (``store.save_message``) when the dialogue asks, which is before its reply says
the message was passed on, and only once the turn is confirmed (``Conversation.perform``
waits for a speculative turn's gate). Transfer and hang-up run after the caller heard the
reply. A form the caller left half-way is kept as an incomplete message at the end.
``outcome`` says what the call came to, for the call record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.logs import kv
from bot.profile import Profile
from bot.providers.base import Action, Conversation
from bot.redact import mask_number
from bot.store.api import NewMessage, Store

log = logging.getLogger("bot.call")


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
            log.info("transfer", extra=kv(call_sid=self.call_sid, purpose=action.purpose or None, to=mask_number(number)))
            await self._finish(None if number else "goodbye", transfer=bool(number), number=number, by="transfer" if number else "bot")
        else:
            await self._finish(None, transfer=False)

    async def _save_pending(self) -> None:
        """The caller left mid-form: keep what was heard as an incomplete message."""
        pending = self.conversation.pending_message()
        if not pending or not (pending.get("name") or pending.get("callback_number")):
            return
        msg = NewMessage(
            call_sid=self.call_sid, caller=self.conversation.caller, name=pending.get("name", ""),
            callback_number=pending.get("callback_number", ""), about=pending.get("about", ""),
            urgent=bool(pending.get("urgent")), complete=False,
        )
        if await self._act(Action("take_message", "caller left mid-form", message=msg)):
            log.info("incomplete message kept", extra=kv(call_sid=self.call_sid))

