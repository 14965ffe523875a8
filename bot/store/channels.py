"""The ways the owner is told: a signed webhook, e-mail over SMTP, SMS over Twilio's REST API.

Webhooks and e-mail carry the outbox row's idempotency key (the ``Idempotency-Key``
header, the e-mail's Message-ID) so a receiver can drop a retry whose first try did
arrive. Twilio's Messages API takes no such key: an SMS whose send timed out after
Twilio accepted it can arrive twice. A failed send raises
``DeliveryError`` with a short reason that names no person and no number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp

from bot.store.sql import OutboxItem

if TYPE_CHECKING:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    from bot.settings import Settings


class DeliveryError(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Phonebot-Signature``: HMAC-SHA256 over "<timestamp>.<body>"; the receiver
    recomputes it and rejects old timestamps (replays)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def describe(payload: dict[str, Any], tz: str) -> tuple[str, str]:
    """(subject, text) for a notification, in the business's timezone."""
    zone = ZoneInfo(tz)
    if payload.get("event") == "test":  # python -m bot notify --test
        when = datetime.fromtimestamp(payload["sent_at"], zone).strftime("%a %d %b %H:%M %Z")
        return (f"Test notification from {payload['business'] or 'phonebot'}",
                f"This is a test from phonebot ({when}). Messages callers leave, and missed calls, arrive like this.\n")
    if payload.get("event") in ("missed_call", "lost_call"):
        c = payload["call"]
        when = datetime.fromtimestamp(c["started_at"], zone).strftime("%a %d %b %H:%M %Z")
        if payload["event"] == "lost_call":
            return (f"Call cut off from {c['caller'] or 'an unknown number'}",
                    f"A call was cut off when the bot's server stopped, before the caller left a message ({when}). Please call back.\n"
                    f"Caller: {c['caller'] or 'unknown'}\nCall: {c['call_sid']}\n")
        return f"Missed call from {c['caller'] or 'an unknown number'}", f"A caller hung up without leaving a message ({when}).\nCaller: {c['caller'] or 'unknown'}\nCall: {c['call_sid']}\n"
    m = payload["message"]
    when = datetime.fromtimestamp(m["created_at"], zone).strftime("%a %d %b %H:%M %Z")
    flag = "URGENT: " if m["urgent"] else ""
    partial = ""
    if m["status"] == "incomplete":
        partial = " (incomplete: the call was cut off mid-message)" if m.get("cut_off") else " (incomplete: the caller hung up mid-message)"
    subject = f"{flag}Message from {m['name'] or 'a caller'}{partial}"
    text = (
        f"{flag}{m['name'] or 'A caller'} asked to be called back on {m['callback_number'] or m['caller'] or 'an unknown number'}.\n"
        f"About: {m['about'] or '-'}\nWhen: {when}\nCaller ID: {m['caller'] or 'unknown'}\nCall: {m['call_sid']}\nMessage #{m['id']}{partial}\n"
    )
    return subject, text


class Channels:
    """Owns the HTTP session and the Twilio client; ``send`` one outbox item."""

    def __init__(self, settings: Settings, *, timeout: float) -> None:
        self.s, self.timeout = settings, timeout
        self._http: aiohttp.ClientSession | None = None
        self._twilio: tuple[Client, AsyncTwilioHttpClient] | None = None  # made on the first SMS

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._twilio is not None and self._twilio[1].session is not None:
            await self._twilio[1].session.close()

    async def send(self, item: OutboxItem) -> None:
        senders = {"webhook": self._webhook, "email": self._email, "sms": self._sms}
        if item.channel not in senders:
            raise DeliveryError(f"unknown channel {item.channel!r}")
        await senders[item.channel](item)

    async def _webhook(self, item: OutboxItem) -> None:
        body = json.dumps({**item.payload, "idempotency_key": item.idem_key}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": item.idem_key,
            "X-Phonebot-Signature": sign(self.s.notify_webhook_secret, int(time.time()), body),
            "User-Agent": "phonebot-notify/1",
        }
        assert self._http is not None
        try:
            async with self._http.post(item.target, data=body, headers=headers) as resp:
                if resp.status >= 300:
                    raise DeliveryError(f"webhook answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}") from None

    async def _email(self, item: OutboxItem) -> None:
        import aiosmtplib

        subject, text = describe(item.payload, self.s.timezone)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.s.smtp_from, item.target, subject
        msg["Message-ID"] = f"<{item.idem_key}@phonebot.invalid>"
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg.set_content(text)
        try:
            await aiosmtplib.send(
                msg, hostname=self.s.smtp_host, port=self.s.smtp_port, username=self.s.smtp_username or None,
                password=self.s.smtp_password or None, use_tls=self.s.smtp_tls == "tls",
                start_tls=True if self.s.smtp_tls == "starttls" else False, timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__}") from None

    def prepare(self, channel: str) -> None:
        """Set up what a channel needs before its first send (the Twilio client: importing
        it takes a while), so a send's time bound covers only the send."""
        if channel == "sms" and self._twilio is None:
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            http = AsyncTwilioHttpClient(timeout=self.timeout)
            client = Client(self.s.twilio_account_sid, self.s.twilio_auth_token, http_client=http)
            if self.s.twilio_base_url:
                client.api.base_url = self.s.twilio_base_url
            self._twilio = (client, http)

    async def _sms(self, item: OutboxItem) -> None:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        self.prepare("sms")
        assert self._twilio is not None
        _, text = describe(item.payload, self.s.timezone)
        try:
            await self._twilio[0].messages.create_async(to=item.target, from_=self.s.twilio_sms_from, body=text[:1200])
        except (TwilioException, OSError, TimeoutError) as exc:
            status = exc.status if isinstance(exc, TwilioRestException) else ""
            raise DeliveryError(f"sms: {type(exc).__name__} {status}".strip()) from None
