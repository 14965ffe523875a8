"""Store options: the database, the business's time zone, stored transcripts (opt-in, kept
for a number of days), and who is notified of messages and missed calls, by which channels
(webhook, e-mail, SMS) and with what retries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.config.values import Get, choice, fail, flag, number, numbers

if TYPE_CHECKING:
    from bot.settings import Settings


def read(get: Get, defaults: type[Settings], twilio_account_sid: str, twilio_auth_token: str) -> dict[str, Any]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from bot.store.notify import Target, TargetError, parse_targets

    out: dict[str, Any] = {}
    url = get("DATABASE_URL").strip()
    if url and not url.startswith(("postgresql://", "postgres://")):
        fail("DATABASE_URL: expected postgresql://user:password@host:port/dbname (unset: SQLite in DATA_DIR)")
    out["database_url"] = url
    tz = get("TIMEZONE").strip() or business_zone(get("BUSINESS_FILE").strip())
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"TIMEZONE={tz!r}: expected an IANA zone such as Europe/London or America/New_York")
    out["timezone"] = tz
    out["store_transcripts"] = flag("STORE_TRANSCRIPTS", get("STORE_TRANSCRIPTS"))
    out["transcript_retention_days"] = number(
        "TRANSCRIPT_RETENTION_DAYS", get("TRANSCRIPT_RETENTION_DAYS", str(defaults.transcript_retention_days)), int, 1, 3650)
    targets: list[Target] = []
    for name in ("notify_to", "notify_urgent_to"):
        raw = get(name.upper())
        try:
            targets += parse_targets(raw)
        except TargetError as exc:
            fail(f"{name.upper()}: {exc}")
        out[name] = raw.strip()
    for name in ("notify_webhook_secret", "smtp_host", "smtp_username", "smtp_password", "smtp_from", "twilio_sms_from"):
        out[name] = get(name.upper()).strip()
    out["smtp_port"] = number("SMTP_PORT", get("SMTP_PORT", "587"), int, 1, 65535)
    out["smtp_tls"] = choice("SMTP_TLS", get("SMTP_TLS", "starttls"), ("starttls", "tls", "none"))
    out.update(numbers(get, defaults, float, {
        "notify_retry_base_s": ("NOTIFY_RETRY_BASE_S", 0.05, 3600),
        "notify_retry_cap_s": ("NOTIFY_RETRY_CAP_S", 0.1, 86400),
        "notify_lease_s": ("NOTIFY_LEASE_S", 1, 3600),
        "notify_send_timeout_s": ("NOTIFY_SEND_TIMEOUT_S", 0.2, 600),
        "notify_alert_after_s": ("NOTIFY_ALERT_AFTER_S", 1, 7 * 86400),
        "call_lease_s": ("CALL_LEASE_S", 1, 3600),
        "message_save_wait_s": ("MESSAGE_SAVE_WAIT_S", 0.1, 60),
    }))

    channels = {t.channel for t in targets}
    if "webhook" in channels and not out["notify_webhook_secret"]:
        fail("NOTIFY_WEBHOOK_SECRET is needed to sign webhook notifications (a webhook target is set)")
    if "email" in channels and not (out["smtp_host"] and out["smtp_from"]):
        fail("SMTP_HOST and SMTP_FROM are needed for e-mail notifications (a mailto: target is set)")
    if "sms" in channels and not (out["twilio_sms_from"] and twilio_account_sid and twilio_auth_token):
        fail("TWILIO_SMS_FROM, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed for SMS notifications (an sms: target is set)")
    return out


def business_zone(path: str) -> str:
    """The business file's time zone: the default for every time shown to the owner (console,
    ``bot messages``, notifications). "UTC" when the file cannot be read or names no valid zone
    (the file's own check reports that)."""
    import tomllib
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from bot.assets import DEFAULT_BUSINESS_FILE

    try:
        zone = str(tomllib.loads(Path(path or DEFAULT_BUSINESS_FILE).read_text(encoding="utf-8")).get("timezone", "")).strip()
        ZoneInfo(zone)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, LookupError):
        return "UTC"
    return zone or "UTC"
