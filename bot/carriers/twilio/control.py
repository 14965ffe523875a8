"""Twilio call control: transfer and hang-up on a Twilio call.

With TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN the live call is updated over
Twilio's REST API (the twilio SDK). Without them the same effect comes from the
stream's end: the bot closes the websocket and Twilio fetches the <Connect>
action URL, which answers the <Dial> or <Hangup> left in ``actions``. On the server
that is the store (bot/store/shared.py), so whichever process or instance gets the
action request answers it; ``MemoryActions`` serves one process (tests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from bot.logs import kv
from bot.redact import mask_number
from bot.store.shared import STORE_DOWN

if TYPE_CHECKING:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

log = logging.getLogger("bot.carriers.twilio.control")

PENDING_TTL_S = 300.0  # Twilio fetches the <Connect action> within seconds of the stream's end


class PendingActions(Protocol):
    """Where a call's <Connect action> answer waits (bot.store.shared.CallGate on the server)."""

    async def put_action(self, call_sid: str, twiml: str) -> None: ...

    async def take_action(self, call_sid: str) -> str | None: ...


def dial_twiml(number: str, no_answer_s: int | None = None) -> str:
    """``<Dial>``; ``no_answer_s`` rings that long (the business file's transfer.no_answer_s)."""
    resp = VoiceResponse()
    resp.dial(number, timeout=no_answer_s)
    return str(resp)


def hangup_twiml() -> str:
    resp = VoiceResponse()
    resp.hangup()
    return str(resp)


class MemoryActions:
    """PendingActions in this process only; an answer Twilio never asks for expires."""

    def __init__(self, *, ttl_s: float = PENDING_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.items: dict[str, tuple[str, float]] = {}  # call_sid -> (TwiML, expiry)
        self.ttl_s, self._clock = ttl_s, clock

    def _expire(self) -> None:
        now = self._clock()
        for sid in [sid for sid, (_, exp) in self.items.items() if exp <= now]:
            del self.items[sid]

    async def put_action(self, call_sid: str, twiml: str) -> None:
        self._expire()
        self.items[call_sid] = (twiml, self._clock() + self.ttl_s)

    async def take_action(self, call_sid: str) -> str | None:
        self._expire()
        twiml, _ = self.items.pop(call_sid, ("", 0.0))
        return twiml or None


class StreamEndControl:
    """No REST credentials: leave what to do for the <Connect action> request."""

    def __init__(self, actions: PendingActions | None = None) -> None:
        self.actions: PendingActions = actions if actions is not None else MemoryActions()

    async def _put(self, call_sid: str, twiml: str, what: str) -> None:
        try:
            await self.actions.put_action(call_sid, twiml)
        except STORE_DOWN as exc:  # the store is down: the action request then gets the apology
            log.error("call action not stored", extra=kv(call_sid=call_sid, action=what, error=type(exc).__name__))

    async def transfer(self, call_sid: str, number: str, *, no_answer_s: int | None = None) -> bool:
        await self._put(call_sid, dial_twiml(number, no_answer_s), "transfer")
        return True  # handed to Twilio's <Dial>: how the dial goes is Twilio's to tell

    async def hangup(self, call_sid: str) -> None:
        await self._put(call_sid, hangup_twiml(), "hangup")

    async def after_stream(self, call_sid: str) -> str | None:
        """The answer left for ``call_sid``'s <Connect action> (once); None: nothing was left."""
        return await self.actions.take_action(call_sid)


class TwilioRestControl(StreamEndControl):
    """Update the live call over REST; if REST fails, fall back to the stream's end."""

    def __init__(self, account_sid: str, auth_token: str, base_url: str = "", timeout: float = 5.0, actions: PendingActions | None = None) -> None:
        super().__init__(actions)
        self._sid, self._token, self._base, self.timeout = account_sid, auth_token, base_url, timeout
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    async def start(self) -> None:
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        self._http = AsyncTwilioHttpClient()  # must be made inside the running loop
        self._client = Client(self._sid, self._token, http_client=self._http)
        if self._base:
            self._client.api.base_url = self._base

    async def close(self) -> None:
        if self._http is not None and self._http.session is not None:
            await self._http.session.close()

    async def _update(self, call_sid: str, what: str, **kw) -> bool:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        if self._client is None:
            raise RuntimeError("TwilioRestControl.start() was not awaited")
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.calls(call_sid).update_async(**kw)
            log.info("call updated", extra=kv(call_sid=call_sid, action=what))
            return True
        except (TwilioException, TimeoutError, OSError, ValueError) as exc:
            log.error("call update failed", extra=kv(call_sid=call_sid, action=what, error=type(exc).__name__, status=exc.status if isinstance(exc, TwilioRestException) else None))
            return False

    async def transfer(self, call_sid: str, number: str, *, no_answer_s: int | None = None) -> bool:
        log.info("transfer", extra=kv(call_sid=call_sid, to=mask_number(number), no_answer_s=no_answer_s))
        if not await self._update(call_sid, "transfer", twiml=dial_twiml(number, no_answer_s)):
            return await super().transfer(call_sid, number, no_answer_s=no_answer_s)
        return True

    async def hangup(self, call_sid: str) -> None:
        if not await self._update(call_sid, "hangup", status="completed"):
            await super().hangup(call_sid)


TWILIO_CONTROL = web.AppKey("twilio_control", StreamEndControl)  # set at start-up (carrier.py)
