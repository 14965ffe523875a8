"""The ``Store`` contract over the old SQLite ``MessageStore`` (bot/messages.py), so the
call can save messages until the real store (bot/store/) is wired in by create_app.
Incomplete and urgent messages are marked in the topic, which is all that schema has."""

from __future__ import annotations

from pathlib import Path

from bot.messages import MessageStore
from bot.store.api import NewMessage


class LegacyMessageStore:
    def __init__(self, path: Path) -> None:
        self._store: MessageStore | None = None
        self._path = Path(path)

    async def save_message(self, msg: NewMessage) -> int:
        if self._store is None:
            self._store = MessageStore(self._path)
        tags = ("[urgent] " if msg.urgent else "") + ("" if msg.complete else "[incomplete] ")
        return await self._store.save_async(
            call_id=msg.call_sid, caller=msg.caller, name=msg.name, callback=msg.callback_number, topic=tags + msg.about
        )
