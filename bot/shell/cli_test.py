"""python -m bot test: play the conversations in SCENARIOS.toml to the configured dialogue and check them.

Each scenario (see ``bot/scenarios.py`` for the file format) is a list of caller lines and
keys at a given local time, with what must happen: replies that match, a transfer to a
purpose, a message with these fields, a hang-up. The dialogue is the one ``python -m bot
chat`` talks to (the receptionist, or the LLM at OPENAI_BASE_URL with its tools); messages
go to a throw-away SQLite store. Prints PASS or FAIL per scenario with what differed, and
exits 1 when any failed (2 for a bad file or settings), so it can gate a change to the
business file, the prompt or the model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bot.settings import Settings, SettingsError


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot test", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    ap.add_argument("scenarios", nargs="+", help="scenario files (TOML)")
    ap.add_argument("--business", help="a business TOML file (default: the file's business = ..., else BUSINESS_FILE)")
    ap.add_argument("--only", help="run only the scenarios whose name contains this text")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every conversation, not only the failed ones")
    args = ap.parse_args(argv)
    from bot.profile import cached_profile
    from bot.scenarios import ScenarioError, load_suite

    env = {**os.environ, "TWILIO_VALIDATE": "false"}
    try:
        base = Settings.from_env(env)

        def zone(business: str):
            return cached_profile(args.business or business or base.business_file).tz

        suites = [(path, load_suite(path, zone)) for path in args.scenarios]
    except (SettingsError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(base, suites, args))


async def _run(base: Settings, suites, args) -> int:
    from bot.profile import cached_profile
    from bot.redact import mask_number
    from bot.scenarios import run_scenario
    from bot.shell.cli_chat import _dialogue
    from bot.store import open_store

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="phonebot-test-") as tmp:
        for path, suite in suites:
            business = args.business or suite.business or base.business_file
            try:
                settings = base.with_(business_file=business, database_url="", data_dir=Path(tmp))
                cached_profile(business)  # a bad business file is reported here, once
            except SettingsError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            when: list = [None]
            dialogue = _dialogue(settings, lambda when=when: when[0])
            store = await open_store(settings)
            print(f"{path} ({dialogue.name}, {Path(business).name if business else 'the bundled business'}):")
            await dialogue.start()
            try:
                for sc in suite.scenarios:
                    if args.only and args.only.lower() not in sc.name.lower():
                        continue
                    when[0] = sc.now
                    out = await run_scenario(sc, dialogue, store)
                    passed, failed = passed + out.passed, failed + (not out.passed)
                    print(f"  {'PASS' if out.passed else 'FAIL'}  {sc.name}")
                    for p in out.problems:
                        print(f"        - {p}")
                    if args.verbose or not out.passed:
                        for line, reply in zip(sc.lines, out.replies, strict=False):
                            print(f"        caller: {line.text}\n        bot:    {reply}")
                        for m in out.messages:
                            print(f"        [message] name={m.name!r} callback={mask_number(m.callback_number)} "
                                  f"about={m.about!r} urgent={m.urgent} complete={m.complete}")
            finally:
                await dialogue.close()
                await store.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
