"""python -m bot notify [--test]: who the owner's notifications go to, and whether each arrives.

Without ``--test`` it lists every target (the business file's ``[notify]`` and ``NOTIFY_TO``)
and whether the settings can reach it. With ``--test`` it sends one test notification to each
through the real channels (the signed webhook, SMTP, Twilio's Messages API), now, outside the
outbox (nothing is queued or retried), and reports each result. Exit 0 when every target works.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from bot.settings import Settings, SettingsError
from bot.store.notify import Target

SEND_TIMEOUT_S = 15.0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bot notify",
        description="List who is told of messages and missed calls (the business file's [notify] and NOTIFY_TO) "
        "and whether the settings can reach each; --test sends a test notification to every target and reports each result.",
    )
    ap.add_argument("--test", action="store_true", help="send a test notification to every target now (through the real channels)")
    args = ap.parse_args(argv)
    try:  # notifications need no Twilio webhook signatures
        env = dict(os.environ)
        if not env.get("TWILIO_AUTH_TOKEN", "").strip():
            env["TWILIO_VALIDATE"] = "false"
        settings = Settings.from_env(env)
        from bot.profile import load_profile

        profile = load_profile(settings.business_file or None)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from bot.store.notify import NotifyConfig, missing_settings

    config = NotifyConfig.from_settings(settings, profile.notify)
    targets = tuple(dict.fromkeys(config.targets + config.urgent_targets))
    if not targets:
        print(f"nobody is notified: fill in [notify] in {profile.source or 'the business file'} (or set NOTIFY_TO). "
              "Messages are kept either way: python -m bot messages, /console.")
        return 1
    urgent_only = set(config.urgent_targets) - set(config.targets)
    unusable = {t: missing for t in targets if (missing := missing_settings(t, settings))}
    results = asyncio.run(_send_all([t for t in targets if t not in unusable], settings, profile.name)) if args.test else {}
    width = max(len(t.channel) for t in targets)
    for t in targets:
        label = f"{t.channel.ljust(width)}  {t.address}" + ("  (urgent only)" if t in urgent_only else "")
        if t in unusable:
            print(f"{'FAILED ' if args.test else 'CANNOT '} {label}: {'not sent, ' if args.test else ''}{t.channel} needs {' and '.join(unusable[t])}")
        elif not args.test:
            print(f"ready   {label}")
        elif results[t]:
            print(f"FAILED  {label}: {results[t]}")
        else:
            print(f"sent    {label}")
    bad = len(unusable) + sum(1 for r in results.values() if r)
    if bad:
        print(f"{bad} of {len(targets)} target(s) would not be told.")
    elif args.test:
        print(f"all {len(targets)} target(s) accepted the test notification: check that each arrived.")
    else:
        print("python -m bot notify --test sends a test notification to each.")
    return 1 if bad else 0


async def _send_all(targets: list[Target], settings: Settings, business: str) -> dict[Target, str]:
    """target -> "" (accepted) or why it failed, each sent once through the real channel."""
    from bot.store.channels import Channels, DeliveryError
    from bot.store.sql import OutboxItem

    channels = Channels(settings, timeout=SEND_TIMEOUT_S)
    await channels.start()
    run = uuid.uuid4().hex[:12]
    payload = {"event": "test", "business": business, "sent_at": time.time()}

    async def one(k: int, t: Target) -> str:
        item = OutboxItem(id=0, idem_key=f"phonebot-test-{run}-{k}", channel=t.channel, target=t.address, payload=payload, attempts=1)
        try:
            await asyncio.wait_for(channels.send(item), SEND_TIMEOUT_S + 5)
        except DeliveryError as exc:
            return str(exc) or "failed"
        except TimeoutError:
            return f"no answer in {SEND_TIMEOUT_S + 5:.0f} s"
        return ""

    try:
        found = await asyncio.gather(*(one(k, t) for k, t in enumerate(targets)))
    finally:
        await channels.close()
    return dict(zip(targets, found, strict=True))
