"""Who is told about what: notification targets, and the outbox rows a message causes.

``NotifyConfig`` is the owner's choice of targets. Until the business profile supplies
it, it comes from ``NOTIFY_TO`` / ``NOTIFY_URGENT_TO``: comma-separated targets, each an
``https://`` webhook URL, ``mailto:owner@example.com`` (or a bare address) or
``sms:+15551234567``. An urgent message goes to the usual targets and to the urgent ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.profile import Notify
    from bot.settings import Settings

CHANNELS = ("webhook", "email", "sms")


class TargetError(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    channel: str  # one of CHANNELS
    address: str  # URL, e-mail address, E.164 number

    @classmethod
    def parse(cls, raw: str) -> Target:
        v = raw.strip()
        low = v.lower()
        if low.startswith(("http://", "https://")):
            return cls("webhook", v)
        if low.startswith("mailto:") or (not low.startswith("sms:") and "@" in v):
            addr = v.split(":", 1)[1] if low.startswith("mailto:") else v
            if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+", addr):
                raise TargetError(f"{raw!r} is not an e-mail address")
            return cls("email", addr)
        if low.startswith("sms:"):
            num = re.sub(r"[\s().-]", "", v[4:])
            if not re.fullmatch(r"\+[1-9]\d{6,14}", num):
                raise TargetError(f"{raw!r}: an SMS target is sms:+ and the number in E.164 form")
            return cls("sms", num)
        raise TargetError(f"{raw!r}: expected an https:// webhook URL, mailto:address or sms:+number")


def parse_targets(raw: str) -> tuple[Target, ...]:
    out: list[Target] = []
    for part in raw.split(","):
        if part.strip():
            t = Target.parse(part)
            if t not in out:
                out.append(t)
    return tuple(out)


@dataclass(frozen=True)
class NotifyConfig:
    targets: tuple[Target, ...] = ()  # every message and missed call
    urgent_targets: tuple[Target, ...] = ()  # also, for urgent messages
    missed_calls: bool = True  # tell the targets about callers who hung up without a word

    def for_message(self, urgent: bool) -> tuple[Target, ...]:
        extra = tuple(t for t in self.urgent_targets if t not in self.targets) if urgent else ()
        return self.targets + extra

    @classmethod
    def from_settings(cls, settings: Settings, profile_notify: Notify | None = None) -> NotifyConfig:
        """NOTIFY_TO / NOTIFY_URGENT_TO, plus the business file's ``[notify]`` section
        (a ``bot.profile.Notify``: webhook URL, e-mail addresses, SMS numbers)."""
        targets, urgent = parse_targets(settings.notify_to), parse_targets(settings.notify_urgent_to)
        if profile_notify is not None:
            n = profile_notify
            targets += parse_targets(_as_targets(n.webhook_url, n.email_to, n.sms_to))
            urgent += parse_targets(_as_targets(n.urgent_webhook_url, n.urgent_email_to, n.urgent_sms_to))
        return cls(_unique(targets), _unique(urgent))


def _as_targets(webhook: str, emails: Iterable[str], numbers: Iterable[str]) -> str:
    return ",".join([*([webhook] if webhook else []), *(f"mailto:{e}" for e in emails), *(f"sms:{n}" for n in numbers)])


def _unique(targets: Iterable[Target]) -> tuple[Target, ...]:
    return tuple(dict.fromkeys(targets))


def idem_key(kind: str, ref: str | int, target: Target) -> str:
    """Stable per (message or call, channel, target): the receiver dedupes retries on it."""
    digest = hashlib.sha256(f"{target.channel}:{target.address}".encode()).hexdigest()[:16]
    return f"phonebot-{kind}-{ref}-{target.channel}-{digest}"


# what each channel needs, as (setting attribute, VARIABLE) pairs
CHANNEL_NEEDS = {
    "email": (("smtp_host", "SMTP_HOST"), ("smtp_from", "SMTP_FROM")),
    "sms": (("twilio_sms_from", "TWILIO_SMS_FROM"), ("twilio_account_sid", "TWILIO_ACCOUNT_SID"), ("twilio_auth_token", "TWILIO_AUTH_TOKEN")),
    "webhook": (("notify_webhook_secret", "NOTIFY_WEBHOOK_SECRET"),),
}


def channel_problems(targets: tuple[Target, ...], settings: Settings, where: str) -> list[str]:
    """One line per target these settings cannot reach (its channel's settings are missing): such a
    notification would be retried for ever and never arrive. ``where`` names where the target is set."""
    out = []
    for t in dict.fromkeys(targets):
        if missing := missing_settings(t, settings):
            shown = {"email": f"mailto:{t.address}", "sms": f"sms:{t.address}"}.get(t.channel, t.address)
            out.append(f"notify: {shown} ({where}) cannot be sent: {t.channel} needs {' and '.join(missing)}")
    return out


def missing_settings(target: Target, settings: Settings) -> list[str]:
    """The variables ``target``'s channel needs that are not set."""
    return [var for attr, var in CHANNEL_NEEDS[target.channel] if not getattr(settings, attr)]
