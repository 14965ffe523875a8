"""The command line: ``python -m bot [COMMAND] [--help]``.

Each command lives in its own module with a ``main(argv) -> int`` that parses its own
arguments (so ``python -m bot COMMAND --help`` is that command's help). Adding a command is
a module and one line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("bot.shell.cli_serve", "run the server (the default; HOST, PORT and the rest from the environment)"),
    "call": ("bot.shell.cli_call", "simulate a Twilio call against a running server; prints each turn and what the bot said"),
    "messages": ("bot.shell.cli_messages", "list the messages callers left, newest first"),
    "notify": ("bot.shell.cli_notify", "list who is told of messages and whether each can be reached; --test sends a test to each"),
    "deliver": ("bot.shell.cli_deliver", "send the queued owner notifications (a worker beside or without the server)"),
    "say": ("bot.shell.cli_say", "speak a text with the embedded voice into an 8 kHz mu-law WAV (a caller utterance)"),
    "check": ("bot.shell.cli_check", "check the settings in the environment, without loading any model"),
    "chat": ("bot.shell.cli_chat", "talk to the configured dialogue in text (no speech models)"),
    "test": ("bot.shell.cli_test", "check scripted caller conversations (SCENARIOS.toml) against the configured dialogue"),
}


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: python -m bot [COMMAND] [ARGS...]",
        "",
        "phonebot: a voice bot for phone numbers. With no command, runs the server.",
        "",
        "commands:",
        *(f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()),
        "",
        "python -m bot COMMAND --help describes a command. Settings come from the environment;",
        "see the README's settings table.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _run(sys.argv[1:] if argv is None else argv)
        finally:  # also when argparse exits after printing --help
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`python -m bot --help | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again, and exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a process the pipe ended


def _run(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = (argv[0], argv[1:]) if argv else ("serve", [])
    if name not in COMMANDS:
        print(f"unknown command: {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
