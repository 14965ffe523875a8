"""The carriers: how calls reach the bot. One package per carrier, one line each in ``CARRIERS``.

A carrier (``bot.carriers.base.Carrier``) adds its routes or listeners to the app and
hands each call to the engine as a ``bot.transport.Transport`` with its own call
control. ``CARRIERS`` (the setting, default ``twilio,browser``) names the ones the app
runs; ``create_app`` builds them with ``bot.carriers.registry.build``.

The table maps a name to the module that builds it (``carrier(settings) -> Carrier``).
It names modules rather than importing them so that reading the settings imports no
carrier, and a carrier's libraries load only when it is switched on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.config.values import Get, fail

if TYPE_CHECKING:
    from bot.settings import Settings

CARRIERS: dict[str, str] = {
    "twilio": "bot.carriers.twilio.carrier",  # Twilio Media Streams: voice webhook + websocket
    "browser": "bot.carriers.browser.carrier",  # the owner's softphone page: /phone
    "sip": "bot.carriers.sip.carrier",  # direct SIP from a trunk or PBX: SIP_LISTEN (switches it on)
}


def read(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    """``CARRIERS``: comma-separated names from the table; unset = the default."""
    raw = get("CARRIERS")
    if not raw.strip():
        return {"carriers": defaults.carriers}
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in CARRIERS]
    if unknown or not names:
        what = f"unknown carrier {', '.join(map(repr, unknown))}" if unknown else "no carrier named"
        return {"carriers": fail(f"CARRIERS={raw!r}: {what}; expected a comma-separated list of {', '.join(CARRIERS)}", defaults.carriers)}
    return {"carriers": names}
