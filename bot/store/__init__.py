"""Storage: caller messages, call records and the notification outbox.

``bot.store.api`` is the contract the rest of the bot codes against; the backends
(SQLite by default, PostgreSQL with ``DATABASE_URL``) implement it. The SQL backend
(and SQLAlchemy with it) is imported on first use, so settings checks and the CLI's
quick commands stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.store.api import CallRecord, NewMessage, Store, StoredMessage, TurnRecord
from bot.store.notify import NotifyConfig

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.store.sql import SqlStore

__all__ = ["CallRecord", "NewMessage", "NotifyConfig", "SqlStore", "Store", "StoredMessage", "TurnRecord", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "SqlStore":
        from bot.store.sql import SqlStore

        return SqlStore
    raise AttributeError(f"module 'bot.store' has no attribute {name!r}")


async def open_store(settings: Settings, notify: NotifyConfig | None = None) -> SqlStore:
    """The configured backend, migrated: PostgreSQL with DATABASE_URL, else SQLite in DATA_DIR."""
    from bot.store.sql import SqlStore

    if notify is None:
        notify = NotifyConfig.from_settings(settings)
    return await SqlStore.open(database_url=settings.database_url, data_dir=settings.data_dir, notify=notify, lease_s=settings.call_lease_s)
