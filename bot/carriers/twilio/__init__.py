"""The Twilio carrier (Programmable Voice + bidirectional Media Streams).

- ``carrier.py``: routes, call control and stream admission for the app's life
- ``webhook.py``: the voice webhook (TwiML), status callbacks, the <Connect action>
- ``media_ws.py``: the Media Streams websocket as the engine's transport
- ``media_stream.py``: the wire format, sans-I/O, server and client roles
- ``signatures.py``, ``admission.py``: which requests and streams are Twilio's calls
- ``control.py``: transfer and hang-up (REST, or TwiML at the stream's end)
- ``config.py``: its settings (part of the one ``Settings``)

Nothing here may be imported by the engine; ``config`` is imported by ``bot.settings``,
so this file imports nothing.
"""
