"""Acting on a live call, whatever the carrier: the ``CallControl`` the session uses.

Each carrier brings its own (``bot.carriers.<name>``: Twilio's REST API or its
<Connect action>; SIP's REFER and BYE); ``LocalControl`` is for a call with no
carrier to ask (the browser softphone): the session's end closes the transport,
which is the hang-up, and a transfer cannot be made.
"""

from __future__ import annotations

import logging
from typing import Protocol

from bot.logs import kv
from bot.redact import mask_number

log = logging.getLogger("bot.control")


class CallControl(Protocol):
    async def transfer(self, call_sid: str, number: str, *, no_answer_s: int | None = None) -> bool:
        """Transfer the call to ``number``; False when the far end refused it or it failed (the
        caller was told, the call ends as a hang-up), True when it was made or handed over."""


    async def hangup(self, call_sid: str) -> None: ...


class LocalControl:
    """No carrier to ask: hang-up is the transport's close (the session does it); a
    transfer is logged and the call ends as a hang-up."""

    async def transfer(self, call_sid: str, number: str, *, no_answer_s: int | None = None) -> bool:  # noqa: ARG002 - CallControl.transfer
        log.info("transfer not possible on this call, ending it", extra=kv(call_sid=call_sid, to=mask_number(number)))
        return True  # recorded as before (transferred); the browser softphone has no far end to refuse it

    async def hangup(self, call_sid: str) -> None:  # noqa: ARG002 - CallControl.hangup
        return None
