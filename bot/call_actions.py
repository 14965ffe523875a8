"""The one action path of a call, an object the ``CallSession`` owns: the receptionist and the
LLM's tools emit the same ``Action``s and they are carried out here. A message has one
global identity (a UUID4 in ``conversation.state``, made at its first detail). While the
caller gives it, each confirmed turn hands the form as it now stands to the app's
``MessageSaver`` as a draft (kept even if this process dies). When the dialogue asks, the
complete message is handed over and waited for (off the LLM's clock, bounded), before the
reply says it was passed on, and only once the turn is confirmed (``Conversation.perform``
waits for a speculative turn's gate). Transfer and hang-up run after the caller heard the
reply (``ending``: what the session must do). A form the caller left half-way is kept as
an incomplete message at the end, on both dialogue paths through ``save_pending``: the receptionist keeps its form in
``conversation.state``; the LLM has none, so ``heard_message`` reads it from the
transcript (the caller's words from the model's first question for message details on).
``outcome`` says what the call came to, for the call record. It owns the conversation
(whose ``act`` it is) and knows nothing of the session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.conversation import PENDING_MESSAGE, Action, Conversation
from bot.logs import kv
from bot.names import name_in
from bot.phone_numbers import phone_in
from bot.profile import Profile
from bot.redact import mask_number
from bot.stall import off_the_clock
from bot.store.api import NewMessage, Transfer
from bot.store.saver import MessageSaver

log = logging.getLogger("bot.call")

SAVED_UPTO = "message_saved_upto"  # Conversation.state: the transcript before it is a saved message's
MESSAGE_UID = "message_uid"  # Conversation.state: the global identity of the message being taken
# The model is taking a message: it says so, or asks for a name or a number to call back.
_TAKING = re.compile(
    r"\b(?:(?:take|leave|pass on) (?:a|the|your) message|message for|(?:your|the) (?:full )?name|who(?:'s| is) calling"
    r"|(?:call ?back|phone|contact|best) number|number (?:to|we|i|for)|call you back|reach you)\b",
    re.I,
)
ABOUT_MAX = 2000  # characters of the caller's words kept


def heard_message(conversation: Conversation) -> dict[str, Any] | None:
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


@dataclass(frozen=True)
class Ending:
    """How a terminal action ends the call: say ``prompt`` (if any), then transfer to
    ``number`` or hang up. ``by``: who ended it, for the call record."""

    prompt: str | None
    transfer: bool
    number: str
    by: str


class CallActions:
    """``save_wait_s``: MESSAGE_SAVE_WAIT_S. ``transfer_number``: TRANSFER_NUMBER (or the
    call's own); empty: the profile's front desk in opening hours. ``clock``: the wall
    clock for the opening hours (tests)."""

    def __init__(
        self,
        *,
        call_sid: str,
        caller: str,
        profile: Profile,
        saver: MessageSaver,
        save_wait_s: float,
        transfer_number: str = "",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.call_sid, self.profile, self.saver = call_sid, profile, saver
        self._save_wait_s, self.transfer_number, self._clock = save_wait_s, transfer_number, clock
        self.conversation = Conversation(call_id=call_sid, caller=caller, act=self.act)
        self.outcome = "answered"  # -> "message", "transferred", "transfer_failed", "emergency" (for the call record)
        self.messages_saved = 0
        self.transfer_purpose = ""  # the dialogue's transfer purpose, until the transfer is made
        self._draft: NewMessage | None = None  # the last draft handed to the saver

    def _now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    def front_desk(self) -> str:
        """Where "a person" goes now: TRANSFER_NUMBER, else the profile's front desk in opening hours."""
        return self.transfer_number or self.profile.transfer_number("front_desk", self._now())

    async def act(self, action: Action) -> bool:
        """A side effect the dialogue needs done before it goes on (Conversation.perform
        has already waited for the turn to be confirmed): commit a message. The save is
        the app's (``MessageSaver``): the dialogue waits for it at most
        MESSAGE_SAVE_WAIT_S, off the LLM's clock, and a save still retrying after that
        goes on in the background (the message is kept, the caller is not told it was
        misheard). Only a permanent failure (a full disk) answers False."""
        if action.kind != "take_message" or action.message is None:
            log.warning("unexpected immediate action", extra=kv(call_sid=self.call_sid, action=action.kind))
            return False
        msg = replace(action.message, uid=self._message_uid())
        saved = self.saver.save(msg, final=True)
        msg_id: int | None = None
        try:
            with off_the_clock():
                msg_id = await asyncio.wait_for(asyncio.shield(saved), self._save_wait_s)
        except TimeoutError:
            log.warning("message save is slow: kept, still retrying", extra=kv(call_sid=self.call_sid, uid=msg.uid))
        except Exception as exc:  # noqa: BLE001 - permanent: the caller is told it failed; nothing leaks
            log.error("message not saved", extra=kv(call_sid=self.call_sid, error=type(exc).__name__))
            return False
        self.messages_saved += 1
        self.conversation.state.pop(PENDING_MESSAGE, None)
        self.conversation.state.pop(MESSAGE_UID, None)
        self._draft = None
        self.conversation.state[SAVED_UPTO] = len(self.conversation.messages)
        if self.outcome not in ("emergency", "transferred"):
            self.outcome = "emergency" if action.reason == "emergency" else "message"
        log.info("message saved" if msg_id is not None else "message accepted", extra=kv(
            call_sid=self.call_sid, message_id=msg_id, uid=msg.uid, urgent=action.message.urgent))
        return True

    def _message_uid(self) -> str:
        """The uid of the message being taken (``conversation.state``), made at its first detail."""
        return str(self.conversation.state.setdefault(MESSAGE_UID, str(uuid.uuid4())))

    def _pending(self) -> NewMessage | None:
        """What the caller has given of a message not yet taken, as an incomplete message
        (None before its first detail)."""
        pending = self.conversation.pending_message() or heard_message(self.conversation)
        if not pending or not any(pending.get(k) for k in ("name", "callback_number", "about")):
            return None
        return NewMessage(
            call_sid=self.call_sid, caller=self.conversation.caller, name=pending.get("name", ""),
            callback_number=pending.get("callback_number", ""), about=pending.get("about", ""),
            urgent=bool(pending.get("urgent")), complete=False, uid=self._message_uid(),
        )

    def keep_draft(self) -> None:
        """After a confirmed turn: the message in progress, as it grew, is saved as a draft
        (in the background; the store's lease makes a dead process's draft reach the owner)."""
        draft = self._pending()
        if draft is not None and draft != self._draft:
            self._draft = draft
            self.saver.save(draft, final=False)

    def ending(self, action: Action) -> Ending:
        """A terminal action, once the caller has heard the reply: transfer or hang up."""
        if action.kind == "transfer":
            number = action.number or self.front_desk()
            if action.purpose == "emergency":
                self.outcome = "emergency"
            self.transfer_purpose = action.purpose or ""
            log.info("transfer", extra=kv(call_sid=self.call_sid, purpose=action.purpose or None, to=mask_number(number)))
            return Ending(None if number else "goodbye", transfer=bool(number), number=number, by="transfer" if number else "bot")
        return Ending(None, transfer=False, number="", by="bot")

    def transferring(self, number: str, by: str) -> Transfer:
        """The call is transferred to ``number`` now: the outcome, and the record's transfer (the number masked)."""
        if self.outcome != "emergency":
            self.outcome = "transferred"
        return Transfer(self.transfer_purpose or ("failures" if by == "failures" else "front_desk"), mask_number(number))

    def transfer_failed(self) -> None:
        """The carrier could not make the transfer (a refused REFER): the outcome says so; an
        emergency stays an emergency (the record's ended_by says the transfer failed)."""
        if self.outcome != "emergency":
            self.outcome = "transfer_failed"

    async def save_pending(self) -> None:
        """The caller left mid-form: keep what was heard as an incomplete message (the
        receptionist's form, or what the caller told the LLM), and tell the owner. A form
        the caller dropped after its draft was kept ends as that draft."""
        msg = self._pending() or self._draft
        if msg is None:
            return
        saved = self.saver.save(msg, final=True)
        try:
            mid = await asyncio.wait_for(asyncio.shield(saved), self._save_wait_s)
        except TimeoutError:
            log.warning("incomplete message save is slow: still retrying", extra=kv(call_sid=self.call_sid, uid=msg.uid))
            return
        except Exception as exc:  # noqa: BLE001 - logged by the saver too; nothing leaks
            log.error("incomplete message not saved", extra=kv(call_sid=self.call_sid, error=type(exc).__name__))
            return
        self._draft = None
        log.info("incomplete message kept", extra=kv(call_sid=self.call_sid, message_id=mid, uid=msg.uid))
