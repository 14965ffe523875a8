"""The Twilio carrier's settings (fields of the one ``Settings``, read by ``Settings.from_env``):
its credentials and signature checks, its REST API, the transfer number, and the media
stream (its token, its silence limit, frames per message)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.config.values import Get, fail, flag, number, numbers, url

if TYPE_CHECKING:
    from bot.settings import Settings


def read(get: Get, defaults: type[Settings], trial: bool, enabled: bool = True) -> dict[str, Any]:
    """``enabled``: Twilio is among CARRIERS (without it a missing auth token is no problem)."""
    kw: dict[str, Any] = {
        "twilio_account_sid": get("TWILIO_ACCOUNT_SID").strip(),
        "twilio_auth_token": get("TWILIO_AUTH_TOKEN").strip(),
        "twilio_validate": flag("TWILIO_VALIDATE", get("TWILIO_VALIDATE", "true")) and not trial,  # trial mode skips signatures
        "twilio_base_url": url("TWILIO_BASE_URL", get("TWILIO_BASE_URL")),
        "transfer_number": get("TRANSFER_NUMBER").strip(),
    }
    if enabled and kw["twilio_validate"] and not kw["twilio_auth_token"]:
        fail(
            "TWILIO_AUTH_TOKEN is not set, so Twilio signatures cannot be checked. Set it, "
            "or set TRIAL=true to try the bot on this machine (binds 127.0.0.1, no signature "
            "or API key checks); TWILIO_VALIDATE=false alone only turns the signature checks off"
        )
    kw.update(numbers(get, defaults, float, {"stream_token_ttl_s": ("STREAM_TOKEN_TTL_S", 5, 600), "media_timeout_s": ("MEDIA_TIMEOUT_S", 2, 600)}))
    kw["media_frames_per_message"] = number("MEDIA_FRAMES_PER_MESSAGE", get("MEDIA_FRAMES_PER_MESSAGE", "3"), int, 1, 5)
    return kw
