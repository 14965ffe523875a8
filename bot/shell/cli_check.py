"""python -m bot check: is this configuration going to start? Without loading any model.

Reports every problem at once (bad values, missing keys, an unreadable business
config, a DATA_DIR that cannot be written, a missing extra, notification targets the
settings cannot reach) and warns about variables that look like the bot's but that it
does not read (``DEEPGRAM_APIKEY``).
Exit status 0 when the server would start, 1 when it would not.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from bot.settings import Settings

# A variable with one of these prefixes is meant for the bot; one it does not read is
# most likely a misspelling.
PREFIXES = (
    "DEEPGRAM_", "OPENAI_", "ELEVENLABS_", "TWILIO_", "STT_", "LLM_", "TTS_", "WHISPER_", "PIPER_",
    "RECEPTIONIST_", "BUSINESS_", "LOG_", "BREAKER_", "DRAIN_", "TRANSFER_", "GREETING_", "FALLBACK_",
    "REPROMPT_", "GOODBYE_", "BUSY_", "VAD_", "SPECULATIVE_", "FAILOVER_", "PHONEBOT_",
)
# read by the vendors' SDKs themselves, not by the bot: not a misspelling
SDK_NAMES = frozenset({"OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_LOG", "TWILIO_REGION", "TWILIO_EDGE"})
# the embedded engines and the package each needs (the 'local' extra)
EXTRAS = {"whisper": "faster_whisper", "piper": "piper"}


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="python -m bot check",
        description="Check the settings in the environment (and the business config they name) without "
        "loading any model or calling any API. Lists every problem at once; warns about variables "
        "that look like the bot's but are not read (misspellings). Exits 1 when the server would not start.",
    ).parse_args(argv)
    errors, warnings = check(os.environ)
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if env_trial(os.environ):
        print("note: TRIAL=true: trial mode on this machine (127.0.0.1 unless HOST is set, no Twilio signature checks); not for a real number")
    if errors:
        print(f"{len(errors)} error{'s' if len(errors) > 1 else ''}: the server would not start.")
        return 1
    print("ok: the settings are valid" + (f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else ""))
    return 0


def check(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for this environment: every problem in one run, the business file's
    and the data directory's too when other settings are bad."""
    errors = Settings.problems(env)
    warnings = unknown_names(env)
    profile, business = _business(env.get("BUSINESS_FILE", "").strip())
    errors += business
    errors += data_dir_problems(Path(env.get("DATA_DIR", "").strip() or Settings.data_dir))
    if flag_set_false(env.get("TWILIO_VALIDATE", "")):  # only when the owner set it: trial mode says so itself
        warnings.append("TWILIO_VALIDATE=false: Twilio signatures are not checked, so anyone who finds the URL can place calls (local trials only)")
    if Settings.problems(env):  # the rest needs valid settings
        return errors, warnings
    settings = Settings.from_env(env)
    for stage, names in (("stt", settings.stt_provider), ("llm", settings.llm_provider), ("tts", settings.tts_provider)):
        for name in names.split(","):
            module = EXTRAS.get(name)
            if module and importlib.util.find_spec(module) is None:
                errors.append(f"{stage.upper()}_PROVIDER: {name} needs the 'local' extra (pip install 'phonebot[local]', or uv run --extra local ...)")
    if profile is not None:
        from bot.store.notify import channel_problems, parse_targets

        n = profile.notify
        targets = parse_targets(",".join([*filter(None, (n.webhook_url, n.urgent_webhook_url)),
                                          *(f"mailto:{e}" for e in n.email_to + n.urgent_email_to),
                                          *(f"sms:{s}" for s in n.sms_to + n.urgent_sms_to)]))
        errors += channel_problems(targets, settings, "the business file's [notify]")
    return errors, warnings


def flag_set_false(raw: str) -> bool:
    return raw.strip().lower() in ("0", "false", "no", "off")


def env_trial(env: Mapping[str, str]) -> bool:
    return env.get("TRIAL", "").strip().lower() in ("1", "true", "yes", "on")


def unknown_names(env: Mapping[str, str]) -> list[str]:
    known = Settings.read_names(env)
    out = []
    for name in sorted(env):
        if name in known or name in SDK_NAMES:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close or name.startswith(PREFIXES):
            hint = f" (did you mean {close[0]}?)" if close else ""
            out.append(f"{name} is set but phonebot does not read it{hint}")
    return out


def _business(path: str):
    """(the profile or None, its problems): the business file (BUSINESS_FILE) read and checked, no model involved."""
    from bot.profile import ProfileError, load_profile

    try:
        return load_profile(path or None), []
    except ProfileError as exc:
        head, *items = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if not items:  # cannot read it, not TOML
            return None, [head]
        where = head.rsplit(" has ", 1)[0]  # "BUSINESS_FILE <path>"
        return None, [f"{where}: {item.removeprefix('- ')}" for item in items]


def data_dir_problems(data_dir: Path) -> list[str]:
    """DATA_DIR must exist and be writable, or be creatable."""
    path = data_dir.resolve()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return [f"DATA_DIR={data_dir}: {probe} is not a directory"]
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "" if probe == path else f" ({probe} is where it would be created)"
        return [f"DATA_DIR={data_dir}: not writable by this user{what}"]
    return []
