"""Storage: caller messages, call records and the notification outbox.

``bot.store.api`` is the contract the rest of the bot codes against; the backends
(SQLite by default, PostgreSQL with ``DATABASE_URL``) implement it.
"""
