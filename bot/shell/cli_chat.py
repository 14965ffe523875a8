"""python -m bot chat: talk to the configured dialogue in text.

Lines come from the terminal or stdin; each gets the reply the caller would hear, and the
actions the dialogue takes are printed as ``[action] ...`` (numbers masked). The dialogue is
the configured LLM provider, or its whole failover chain as a call has it (``openai,receptionist``:
the receptionist answers when the server fails, and ``[failover]`` says so): the
receptionist, or the LLM with its tools. No speech models are loaded. Ends at the end of input, or when the dialogue hangs
up or transfers. Messages are printed, and stored only with ``--save``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from bot.errors import StageError
from bot.redact import mask_number
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.providers.base import LLM, Action, Conversation


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot chat", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    ap.add_argument("--business", help="a business TOML file (default: BUSINESS_FILE, else the bundled one)")
    ap.add_argument("--now", help="pretend it is this time, ISO 8601 (e.g. 2026-11-24T15:00-05:00)")
    ap.add_argument("--caller", default="+15550000000", help="the caller's number (default +15550000000)")
    ap.add_argument("--save", action="store_true", help="store messages in DATA_DIR, as a call would")
    args = ap.parse_args(argv)
    try:  # chatting needs no Twilio credentials
        env = {**os.environ, "TWILIO_VALIDATE": "false"}
        if args.business:
            env["BUSINESS_FILE"] = args.business
        settings = Settings.from_env(env)
        now = datetime.fromisoformat(args.now) if args.now else None
        if now is not None and now.tzinfo is None:
            from bot.profile import cached_profile

            now = now.replace(tzinfo=cached_profile(settings.business_file).tz)
        llm = _dialogue(settings, (lambda: now) if now else None)
    except (SettingsError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_chat(settings, llm, args.caller, args.save))


def _dialogue(settings: Settings, clock):
    """The LLM provider, or the failover chain of them, as a call builds it (bot/providers/
    registry.py), each member told the pretended time."""
    from bot.providers.registry import make

    members = [make("llm", n.strip(), settings, clock=clock) for n in settings.llm_provider.split(",") if n.strip()]
    if len(members) == 1:
        return members[0]
    from bot.providers.failover import FailoverLLM

    return FailoverLLM(members, settings.llm_timeout, share=settings.failover_share,
                       threshold=settings.breaker_threshold, cooldown_s=settings.breaker_cooldown_s)


async def _ask(llm: LLM, conv: Conversation, trouble_text: str) -> tuple[list[str], list[Action]] | None:
    """The LLM's reply to the last line: its text pieces and actions; None when the LLM
    failed (said as a caller would hear it, and the line taken back)."""
    said: list[str] = []
    actions: list[Action] = []
    try:
        async for item in llm.reply(conv):
            if isinstance(item, str):
                said.append(item)
            else:
                actions.append(item)
    except StageError as err:
        print(f"[error] {err.stage}/{err.code}: {err.message}", flush=True)
        print(f"bot: {trouble_text}", flush=True)  # what a caller would hear
        conv.messages.pop()
        return None
    return said, actions


def _print_reply(llm: LLM, reply: str, actions: list[Action]) -> None:
    used, members = getattr(llm, "last_used", None), getattr(llm, "members", None)
    if used is not None and members and used != members[0].name:
        print(f"[failover] answered by {used}", flush=True)
    print(f"bot: {reply}", flush=True)
    for a in actions:
        if a.kind == "transfer":
            print(f"[action] transfer purpose={a.purpose or '-'} to={mask_number(a.number) or '-'}", flush=True)
        else:
            print(f"[action] {a.kind}", flush=True)


async def _chat(settings: Settings, llm, caller: str, save: bool) -> int:
    from bot.conversation import Conversation
    from bot.profile import cached_profile, prompt_texts_from

    store = None
    if save:  # as a call does: the business file's targets too, queued in the same outbox
        from bot.store import NotifyConfig, open_store

        notify = NotifyConfig.from_settings(settings, cached_profile(settings.business_file).notify)
        if any(t.channel == "webhook" for t in notify.targets + notify.urgent_targets) and not settings.notify_webhook_secret:
            print("configuration error: NOTIFY_WEBHOOK_SECRET is needed to sign webhook notifications", file=sys.stderr)
            return 2
        store = await open_store(settings, notify)

    async def act(action: Action) -> bool:
        m = action.message
        assert m is not None
        print(f"[action] take_message name={m.name!r} callback={mask_number(m.callback_number)} about={m.about!r} urgent={m.urgent}"
              + ("" if store else " (not stored; --save stores it)"))
        if store is not None:
            mid = await store.save_message(m)
            queued = len((await store.delivery([mid])).get(mid, []))
            print(f"[saved] message #{mid}, {queued} notification{'' if queued == 1 else 's'} queued"
                  + (" (the server, or python -m bot deliver, sends them)" if queued else ""), flush=True)
        return True

    conv = Conversation(call_id="chat", caller=caller, act=act)
    interactive = sys.stdin.isatty()
    print("bot: " + prompt_texts_from(settings, cached_profile(settings.business_file))["greeting"], flush=True)
    await llm.start()
    try:
        while True:
            line = await asyncio.to_thread(_read, interactive)
            if line is None:
                return 0
            if not line.strip():
                continue
            conv.add_user(line.strip())
            answer = await _ask(llm, conv, settings.trouble_text)
            if answer is None:
                continue
            said, actions = answer
            reply = "".join(said).strip()
            conv.add_assistant(reply)
            _print_reply(llm, reply, actions)
            if actions:
                return 0  # the call would end here
    finally:
        await llm.close()
        if store is not None:
            await store.close()


def _read(interactive: bool) -> str | None:
    try:
        return input("you: ") if interactive else sys.stdin.readline() or None
    except EOFError:
        return None
