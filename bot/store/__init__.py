"""Storage: caller messages, call records and the notification outbox.

``bot.store.api`` is the contract the rest of the bot codes against; the backends
(SQLite by default, PostgreSQL with ``DATABASE_URL``) implement it.
"""

from __future__ import annotations

from bot.store.api import CallRecord, NewMessage, Store, StoredMessage, TurnRecord
from bot.store.notify import NotifyConfig
from bot.store.sql import SqlStore

__all__ = ["CallRecord", "NewMessage", "NotifyConfig", "SqlStore", "Store", "StoredMessage", "TurnRecord", "open_store"]


async def open_store(settings, notify: NotifyConfig | None = None) -> SqlStore:
    """The configured backend, migrated: PostgreSQL with DATABASE_URL, else SQLite in DATA_DIR."""
    if notify is None:
        notify = NotifyConfig.from_settings(settings)
    return await SqlStore.open(database_url=settings.database_url, data_dir=settings.data_dir, notify=notify)
