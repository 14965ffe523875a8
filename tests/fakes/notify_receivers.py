"""Receivers for owner notifications, in the test process: a webhook endpoint that checks
the signature, an SMTP server (aiosmtpd, real SMTP on a socket) and Twilio's Messages
API (``POST /2010-04-01/Accounts/{AC}/Messages.json``, form-encoded, Basic auth)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from email import message_from_bytes

from aiohttp import web


@dataclass
class Inbox:
    secret: str = ""
    hooks: list[dict] = field(default_factory=list)  # {"key", "body", "signed"}; "answered": False if the sender was gone
    mails: list[dict] = field(default_factory=list)  # {"message_id", "to", "subject", "text"}
    sms: list[dict] = field(default_factory=list)  # {"account", "auth", "form"}
    hook_status: int = 200
    # set: each webhook request is held (after it is read) until the event is set: a
    # receiver that hangs; ``held`` counts the requests waiting on it
    hold: asyncio.Event | None = None
    held: int = 0


def signature_valid(secret: str, header: str, body: bytes, max_age_s: float = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    want = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - ts) < max_age_s and hmac.compare_digest(want, parts.get("v1", ""))


def webhook_app(inbox: Inbox) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if inbox.hold is not None and not inbox.hold.is_set():
            inbox.held += 1
            try:
                await inbox.hold.wait()
            finally:
                inbox.held -= 1
            if request.transport is None or request.transport.is_closing():  # the sender is gone: it never hears
                inbox.hooks.append({"key": request.headers.get("Idempotency-Key"), "body": json.loads(body), "answered": False})
                return web.json_response({"ok": True}, status=inbox.hook_status)
        inbox.hooks.append({
            "key": request.headers.get("Idempotency-Key"), "body": json.loads(body),
            "signed": signature_valid(inbox.secret, request.headers.get("X-Phonebot-Signature", ""), body),
        })
        return web.json_response({"ok": True}, status=inbox.hook_status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


class SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.content)
        self.inbox.mails.append({
            "message_id": msg["Message-ID"], "to": envelope.rcpt_tos, "subject": msg["Subject"],
            "text": msg.get_payload(decode=True).decode(),
        })
        return "250 OK"


def twilio_sms_app(inbox: Inbox) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        form = dict(await request.post())
        auth = request.headers.get("Authorization", "")
        user = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        inbox.sms.append({"account": request.match_info["ac"], "auth": user, "form": form})
        sid = "SM" + hashlib.md5(str(len(inbox.sms)).encode()).hexdigest()
        return web.json_response(
            {"sid": sid, "account_sid": request.match_info["ac"], "to": form.get("To"), "from": form.get("From"),
             "body": form.get("Body"), "status": "queued", "direction": "outbound-api"},
            status=201,
        )

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{ac}/Messages.json", create)
    return app
