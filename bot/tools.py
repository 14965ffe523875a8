"""What the LLM knows and can do: the system prompt built from the business profile (with
the local date and time), and a registry of tools as data (name, description, JSON-schema
parameters, handler). A handler's ``content`` goes back to the model for its next words;
its ``action`` (transfer, hang-up) runs once the caller has heard the reply. Side effects
(saving a message) go through ``Conversation.perform``, which waits for the turn to be
confirmed, so a speculative turn never writes.

The model's arguments are the caller's words at one remove (a prompt injection is
spoken, not typed), so a tool acts only on what the business file names: a transfer
goes to a configured purpose's number, an argument a tool does not declare is refused,
text is cleaned and bounded (bot/text_safety.py), and no tool reads stored messages
back, so no caller can hear another's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.conversation import Action, Conversation
from bot.hours import clock_text, hours_for, now_text, week_text
from bot.language import caller_digits
from bot.logs import kv
from bot.phone_numbers import digits_in
from bot.profile import Profile
from bot.store.api import NewMessage
from bot.text_safety import clean

log = logging.getLogger("bot.tools")

MAX_ARGUMENTS_CHARS = 32_000  # one call's JSON arguments: 10 KB strings are cleaned and cut, far more is refused
MAX_NAME_CHARS = 100
MAX_ABOUT_CHARS = 2000  # as bot/call_actions.py keeps of a message heard in the conversation
MAX_NUMBER_DIGITS = 15  # E.164


@dataclass(frozen=True)
class ToolContext:
    conversation: Conversation
    profile: Profile
    now: datetime  # in the business's timezone
    transfer_number: str = ""  # TRANSFER_NUMBER: overrides the profile's front desk


@dataclass(frozen=True)
class ToolResult:
    content: str  # for the model
    action: Action | None = None  # terminal: runs after the caller has heard the reply


Handler = Callable[[dict[str, Any], ToolContext], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    handler: Handler

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {t.name: t for t in tools}

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    async def call(self, name: str, arguments: str, ctx: ToolContext) -> ToolResult:
        """Run a tool on the model's JSON arguments. Bad input becomes a result that tells
        the model what was wrong; it never raises."""
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult(f"error: there is no tool named {clean(name, 40)!r}; the tools are {', '.join(self.tools)}")
        if len(arguments or "") > MAX_ARGUMENTS_CHARS:
            return ToolResult(f"error: the arguments are longer than {MAX_ARGUMENTS_CHARS} characters; keep them short")
        try:
            args = json.loads(arguments or "{}")
        except (ValueError, RecursionError):
            return ToolResult("error: the arguments were not valid JSON; call the tool again")
        if not isinstance(args, dict):
            return ToolResult("error: the arguments must be a JSON object")
        unknown = sorted(k for k in args if k not in tool.parameters.get("properties", {}))
        if unknown:  # e.g. a number to transfer to: a tool acts only on what the business file names
            log.info("tool arguments refused", extra=kv(tool=tool.name, unknown=len(unknown)))
            return ToolResult(f"error: {tool.name} takes only {', '.join(tool.parameters.get('properties', {})) or 'no arguments'}; "
                              f"{clean(', '.join(unknown), 60)} is not one of them")
        return await tool.handler(args, ctx)


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


async def _take_message(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    conv = ctx.conversation
    given = clean(str(args.get("callback_number", "")), 100)
    number = digits_in(given)
    if len(number) < 7 and given.lower() in ("caller", "this number", "same"):
        number = caller_digits(conv.caller)
    if len(number) < 7:
        return ToolResult("not saved: the callback number is missing or too short. Ask the caller for it, digit by digit.")
    if len(number) > MAX_NUMBER_DIGITS:
        return ToolResult(f"not saved: a phone number has at most {MAX_NUMBER_DIGITS} digits. Ask the caller for it again, digit by digit.")
    # what the model wrote goes to the owner's screens and notifications: one line, bounded, no control characters
    name = clean(str(args.get("name", "")), MAX_NAME_CHARS)
    about = clean(str(args.get("about", "")), MAX_ABOUT_CHARS)
    if not name or not about:
        return ToolResult("not saved: ask the caller for their name and what the message is about first.")
    msg = NewMessage(call_sid=conv.call_id, caller=conv.caller, name=name, callback_number=number, about=about,
                     urgent=bool(args.get("urgent", False)))
    if await conv.perform(Action("take_message", "model tool call", message=msg)):
        return ToolResult("saved: the message has been passed on to the team. Tell the caller, then ask if there is anything else.")
    return ToolResult("failed: the message could not be saved. Apologise and ask the caller to call again later.")


async def _get_hours(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    return ToolResult(hours_for(ctx.profile, clean(str(args.get("day", "") or ""), 40), ctx.now))


async def _transfer_call(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """The number comes from the business file (or TRANSFER_NUMBER) for a named purpose,
    never from the model: a caller who talks it into "transfer me to +1 900 ..." gets nowhere."""
    purpose = str(args.get("purpose", "front_desk") or "front_desk")
    if purpose not in ("front_desk", "emergency"):
        return ToolResult("error: purpose must be front_desk or emergency")
    number = ctx.profile.transfer_number(purpose, ctx.now)
    if purpose == "front_desk" and ctx.transfer_number:
        number = ctx.transfer_number
    if not number:
        why = "the office is closed" if purpose == "front_desk" and not ctx.profile.is_open(ctx.now) else "no number is set"
        return ToolResult(f"not transferred: {why}. Offer to take a message instead.")
    action = Action("transfer", "model tool call", purpose, number)
    return ToolResult("the call will be transferred right after your next words: tell the caller you are putting them through.", action)


async def _end_call(_args: dict[str, Any], _ctx: ToolContext) -> ToolResult:
    return ToolResult("the call will end after your next words: say a short goodbye.", Action("hangup", "model tool call"))


def business_tools() -> ToolRegistry:
    return ToolRegistry([
        Tool("take_message", "Save a message for the team once you have the caller's name, callback number (read it back "
             "to them first) and what it is about. Only say it was passed on after this succeeds.",
             _obj({"name": {"type": "string", "description": "the caller's name"},
                   "callback_number": {"type": "string", "description": "digits to call back, or \"caller\" for the number they call from"},
                   "about": {"type": "string", "description": "what the message is about, in the caller's words"},
                   "urgent": {"type": "boolean", "description": "true for emergencies and anything that cannot wait"}},
                  ["name", "callback_number", "about", "urgent"]), _take_message),
        Tool("get_hours", "Opening hours for a day: \"today\", \"tomorrow\", \"now\", a weekday, a date YYYY-MM-DD, or \"week\".",
             _obj({"day": {"type": "string"}}, ["day"]), _get_hours),
        Tool("transfer_call", "Put the caller through to a person: purpose \"front_desk\" (opening hours only) or "
             "\"emergency\" (the on-call line, any time).",
             _obj({"purpose": {"type": "string", "enum": ["front_desk", "emergency"]}}, ["purpose"]), _transfer_call),
        Tool("end_call", "Hang up after saying goodbye, once the caller has what they need.", _obj({}, []), _end_call),
    ])


def system_prompt(profile: Profile, now: datetime, instructions: str) -> str:
    """The model's instructions plus everything it may say about the business."""
    t = profile.local(now)
    closures = "; ".join(f"{reason} ({d.strftime('%A %d %B %Y')})" for d, reason in sorted(profile.closures.items()) if d >= t.date())
    faqs = "\n".join(f"- {f.question or ', '.join(f.keywords)}: {f.answer}" for f in profile.faqs)
    em = profile.emergency
    lines = [
        instructions,
        "",
        f"You answer the phone for {profile.name}.",
        f"Now it is {t.strftime('%A %d %B %Y')}, {clock_text(t.hour * 60 + t.minute)} local time ({profile.timezone}). {now_text(profile, t)}",
        f"Opening hours: {week_text(profile)}",
        f"Closed on: {closures}." if closures else "",
        f"Address: {profile.address}",
        f"Common questions:\n{faqs}" if faqs else "",
        (f"Emergencies ({'; '.join(em.situations + em.keywords)}): say \"{em.say}\" then call transfer_call with purpose "
         f"\"emergency\". For a fire, gas or a danger to life, first say: \"{em.danger_say}\"" if em.configured else ""),
        "To take a message, ask for the caller's name, a callback number (read it back) and what it is about, then call "
        "take_message; only say it was passed on once it succeeds. If the caller asks for a person, call transfer_call with "
        "purpose \"front_desk\". When the caller is done, say goodbye and call end_call.",
        "Only state facts given here. For anything else, say you can't help with that yourself and offer to take a message.",
    ]
    return "\n".join(x for x in lines if x is not None and x != "")
