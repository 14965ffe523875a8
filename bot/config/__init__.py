"""How ``Settings.from_env`` (bot/settings.py) reads the environment: one reader per area.

Each area module has ``read(get, defaults, ...) -> dict`` that returns its fields of
``Settings`` by name, read from the field's upper-case variable (``end_silence_ms`` from
``END_SILENCE_MS``); ``values`` holds the parsers they share.

- ``server``: where to listen, logs, the HTTP edge (trial, API key, connection limits), workers
- ``providers``: each stage's provider or failover chain, the vendors' keys and models,
  the embedded engines, stage budgets and circuit breakers
- ``calls``: turn-taking, a call's limits and what the bot says
- the carriers' settings live with them: ``bot/carriers/__init__.py`` reads ``CARRIERS`` (which
  carriers run), ``bot/carriers/twilio/config.py`` Twilio's (signatures, REST, transfer, media stream)
- ``store``: the database, the business's time zone, notifications and their channels
"""
