"""Conversations an owner writes down and checks before going live (``python -m bot test``).

A scenario file is TOML::

    business = "../business/property-office.toml"   # optional, relative to this file
    now = "2026-12-08T21:30"                         # local time of the business (default for every scenario)
    caller = "+15551230000"                          # the caller ID (default for every scenario)

    [[scenario]]
    name = "a message given all at once"
    now = "2026-12-09T10:00"                         # optional, this scenario only
    says = ["Hi, this is Mark Davis, call me back about my lease, 555 867 5309",
            { say = "yes", reply = "passed your message on" },
            { dtmf = "1" }]
    reply = ["(?i)anything else"]                    # each matches a reply, in this order (one reply may match several)
    not_reply = ["didn't catch"]                     # no reply matches
    transfer = "emergency"                           # the call is transferred for this purpose ("" = never)
    hangup = true                                    # the dialogue hangs up (false: it must not)
    message = { name = "Mark Davis", callback_number = "5558675309", about = "lease", urgent = false }
    # message = false: no message is left

A line is a string (what the caller says), or a table with ``say`` or ``dtmf`` (keys
pressed, as the call delivers them: one entry, ended by ``#`` or nothing, of which the call keeps the
first 20 digits, as the controller does) and an optional ``reply`` pattern for the bot's answer
to that line. Patterns are regular expressions searched case-insensitively. A message's
``name`` and ``callback_number`` must be equal (the name ignoring case), ``about`` is a
pattern, ``urgent`` and ``complete`` equal. A caller who stops mid-form leaves an
incomplete message, as on a call.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.conversation import Action, Conversation
from bot.errors import StageError
from bot.phone_numbers import same_number
from bot.store.api import NewMessage
from bot.turns.controller import MAX_DTMF_DIGITS  # the call keeps this many digits an entry

SCENARIO_KEYS = {"name", "now", "caller", "says", "reply", "not_reply", "transfer", "hangup", "message"}
MESSAGE_KEYS = {"name", "callback_number", "about", "urgent", "complete"}
MAX_LINES = 200


class ScenarioError(ValueError):
    """The scenario file has problems; the message lists them."""


@dataclass(frozen=True)
class Line:
    text: str  # what the dialogue receives ("DTMF 123" for keys)
    reply: str = ""  # pattern for the bot's answer to this line


@dataclass(frozen=True)
class Scenario:
    name: str
    lines: tuple[Line, ...]
    now: datetime | None = None
    caller: str = ""
    reply: tuple[str, ...] = ()
    not_reply: tuple[str, ...] = ()
    transfer: str | None = None  # None: not checked; "": never transferred
    hangup: bool | None = None
    message: dict | bool | None = None  # None: not checked; False: none left


@dataclass(frozen=True)
class Suite:
    scenarios: tuple[Scenario, ...]
    business: str = ""  # path, "" = the configured one


@dataclass
class Outcome:
    scenario: Scenario
    replies: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    hangup: bool = False
    messages: list[NewMessage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def load_suite(path: str | Path, tz) -> Suite:
    """Read and check a scenario file; ``tz`` is the business's (for "now" without an offset)
    or a callable taking the business path and returning it."""
    where = Path(path)
    try:
        raw = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read it ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{where}: not valid TOML ({e})") from None
    errors: list[str] = []
    for key in sorted(set(raw) - {"business", "now", "caller", "scenario"}):
        errors.append(f"{key}: unknown key (expected business, now, caller, scenario)")
    business = raw.get("business", "")
    if not isinstance(business, str):
        errors.append("business: expected a path (text)")
        business = ""
    if business and not Path(business).is_absolute():
        business = str((where.parent / business).resolve())
    zone = tz(business) if callable(tz) else tz
    default_now = _when(raw.get("now"), zone, "now", errors)
    default_caller = _str(raw, "caller", "caller", errors)
    items = raw.get("scenario")
    if not isinstance(items, list) or not items:
        errors.append("scenario: expected one or more [[scenario]] tables")
        items = []
    out = []
    for i, item in enumerate(items):
        sc = _scenario(item, i, zone, errors)
        if sc is not None:
            out.append(Scenario(**{**sc.__dict__, "now": sc.now or default_now, "caller": sc.caller or default_caller}))
    if errors:
        listed = "\n".join(f"  - {e}" for e in errors)
        raise ScenarioError(f"{where} has {len(errors)} problem(s):\n{listed}")
    return Suite(tuple(out), business)


def _scenario(item: Any, i: int, tz, errors: list[str]) -> Scenario | None:
    at = f"scenario[{i}]"
    if not isinstance(item, dict):
        errors.append(f"{at}: expected a table")
        return None
    n = len(errors)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{at}.name: required (text)")
        name = at
    at = f"scenario {name!r}"
    for key in sorted(set(item) - SCENARIO_KEYS):
        errors.append(f"{at}: unknown key {key!r} (expected one of {', '.join(sorted(SCENARIO_KEYS))})")
    lines = _says(item, at, errors)
    reply = _patterns(item, "reply", at, errors)
    not_reply = _patterns(item, "not_reply", at, errors)
    transfer = item.get("transfer")
    if transfer is not None and not isinstance(transfer, str):
        errors.append(f"{at}.transfer: expected a purpose such as \"emergency\" or \"front_desk\" (\"\" = never transferred)")
    hangup = item.get("hangup")
    if hangup is not None and not isinstance(hangup, bool):
        errors.append(f"{at}.hangup: expected true or false")
    message = item.get("message")
    if message is not None and message is not False:
        _check_message_table(message, at, errors)
    now = _when(item.get("now"), tz, f"{at}.now", errors)
    caller = _str(item, "caller", f"{at}.caller", errors)
    if len(errors) > n:
        return None
    return Scenario(name.strip(), tuple(lines), now, caller, reply, not_reply, transfer, hangup, message)


def _says(item: dict, at: str, errors: list[str]) -> list[Line]:
    """The caller's lines (``says``)."""
    lines = []
    says = item.get("says")
    if not isinstance(says, list) or not says or len(says) > MAX_LINES:
        errors.append(f"{at}.says: expected a list of 1 to {MAX_LINES} caller lines")
        says = []
    for j, s in enumerate(says):
        line = _line(s, f"{at}.says[{j}]", errors)
        if line is not None:
            lines.append(line)
    return lines


def _check_message_table(message: Any, at: str, errors: list[str]) -> None:
    """The expected message (``message``): its keys and their types."""
    if not isinstance(message, dict):
        errors.append(f"{at}.message: expected a table (name, callback_number, about, urgent, complete) or false")
        return
    for key in sorted(set(message) - MESSAGE_KEYS):
        errors.append(f"{at}.message: unknown key {key!r} (expected one of {', '.join(sorted(MESSAGE_KEYS))})")
    for key in ("name", "callback_number", "about"):
        if key in message and not isinstance(message[key], str):
            errors.append(f"{at}.message.{key}: expected text")
    for key in ("urgent", "complete"):
        if key in message and not isinstance(message[key], bool):
            errors.append(f"{at}.message.{key}: expected true or false")
    if isinstance(message.get("about"), str):
        _compile(message["about"], f"{at}.message.about", errors)


def _line(s: Any, at: str, errors: list[str]) -> Line | None:
    if isinstance(s, str):
        return Line(s) if s.strip() else _bad(errors, f"{at}: an empty line (the caller says something)")
    if not isinstance(s, dict) or set(s) - {"say", "dtmf", "reply"} or ("say" in s) == ("dtmf" in s):
        return _bad(errors, f"{at}: expected text, or a table with say or dtmf (and an optional reply)")
    reply = s.get("reply", "")
    if not isinstance(reply, str):
        return _bad(errors, f"{at}.reply: expected a pattern (text)")
    if reply and not _compile(reply, f"{at}.reply", errors):
        return None
    if "dtmf" in s:
        keys = s["dtmf"]
        if not isinstance(keys, str) or not re.fullmatch(r"[0-9*]{1,64}#?", keys):
            return _bad(errors, f"{at}.dtmf: expected keys 0-9 and * (at most 64) in one entry, optionally ended by #, as text")
        return Line(f"DTMF {keys.rstrip('#')[:MAX_DTMF_DIGITS]}", reply)  # a call drops the digits past the bound
    if not isinstance(s["say"], str) or not s["say"].strip():
        return _bad(errors, f"{at}.say: expected what the caller says (text)")
    return Line(s["say"], reply)


def _bad(errors: list[str], msg: str) -> Line | None:
    errors.append(msg)
    return None


def _patterns(item: dict, key: str, at: str, errors: list[str]) -> tuple[str, ...]:
    v = item.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        errors.append(f"{at}.{key}: expected a pattern or a list of patterns")
        return ()
    return tuple(x for x in v if _compile(x, f"{at}.{key}", errors))


def _compile(pattern: str, at: str, errors: list[str]) -> bool:
    try:
        re.compile(pattern)
    except re.error as e:
        errors.append(f"{at}: {pattern!r} is not a valid regular expression ({e})")
        return False
    return True


def _str(d: dict, key: str, at: str, errors: list[str]) -> str:
    v = d.get(key, "")
    if not isinstance(v, str):
        errors.append(f"{at}: expected text")
        return ""
    return v


def _when(v: Any, tz, at: str, errors: list[str]) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        t = v
    elif isinstance(v, str):
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            errors.append(f"{at}: {v!r} is not a date and time (expected ISO 8601 such as 2026-12-08T21:30)")
            return None
    else:
        errors.append(f"{at}: expected a date and time such as 2026-12-08T21:30")
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


# ---------------------------------------------------------------- running


async def run_scenario(sc: Scenario, dialogue, store=None) -> Outcome:
    """Play the caller's lines to ``dialogue`` (an LLM provider: the receptionist or a
    model), saving messages to ``store`` (optional) as a call would, and check what happened."""
    from bot.call_actions import SAVED_UPTO, heard_message

    out = Outcome(sc)

    async def act(action: Action) -> bool:
        if action.kind != "take_message" or action.message is None:
            return False
        if store is not None:
            await store.save_message(action.message)
        out.messages.append(action.message)
        conv.state.pop("pending_message", None)
        conv.state[SAVED_UPTO] = len(conv.messages)  # as a call does: what follows is a new message
        return True

    conv = Conversation(call_id=f"test-{abs(hash(sc.name)) % 10**8}", caller=sc.caller, act=act)
    ended = ""
    for i, line in enumerate(sc.lines, 1):
        if ended:
            out.problems.append(f"the call ended at line {i - 1} ({ended}), but {len(sc.lines) - i + 1} line(s) remain")
            break
        conv.add_user(line.text)
        said: list[str] = []
        actions: list[Action] = []
        try:
            async for item in dialogue.reply(conv):
                (actions if isinstance(item, Action) else said).append(item)
        except StageError as err:
            conv.messages.pop()
            out.replies.append(f"[error {err.stage}/{err.code}]")
            out.problems.append(f"line {i}: the dialogue failed ({err.stage}/{err.code}: {err.message})")
            continue
        reply = "".join(said).strip()
        conv.add_assistant(reply)
        out.replies.append(reply)
        if line.reply and not re.search(line.reply, reply, re.I):
            out.problems.append(f"line {i} {_short(line.text)!r}: reply {_short(reply)!r} does not match /{line.reply}/")
        ended = _carry_out(actions, out)
    pending = conv.pending_message() or heard_message(conv)
    if pending and (pending.get("name") or pending.get("callback_number")):
        msg = NewMessage(call_sid=conv.call_id, caller=sc.caller, name=pending.get("name", ""),
                         callback_number=pending.get("callback_number", ""), about=pending.get("about", ""),
                         urgent=bool(pending.get("urgent")), complete=False)
        if store is not None:
            await store.save_message(msg)
        out.messages.append(msg)
    _check(sc, out)
    return out


def _carry_out(actions: list[Action], out: Outcome) -> str:
    """A line's transfer or hang-up, into ``out``; how the call ended ("" if it goes on)."""
    ended = ""
    for a in actions:
        if a.kind == "transfer":
            out.transfers.append(a.purpose or "front_desk")
            ended = f"transfer to {a.purpose or 'front_desk'}"
        elif a.kind == "hangup":
            out.hangup = True
            ended = "hang-up"
    return ended


def _check(sc: Scenario, out: Outcome) -> None:
    _check_replies(sc, out)
    if sc.transfer is not None:
        got = out.transfers[0] if out.transfers else ""
        if got != sc.transfer:
            out.problems.append(f"transfer: expected {sc.transfer or 'none'}, got {got or 'none'}")
    if sc.hangup is not None and out.hangup != sc.hangup:
        out.problems.append("expected the dialogue to hang up" if sc.hangup else "the dialogue hung up, which it must not")
    if sc.message is False and out.messages:
        m = out.messages[0]
        out.problems.append(f"expected no message, got one from {m.name!r} about {_short(m.about)!r}")
    elif isinstance(sc.message, dict):
        _check_left_message(sc.message, out)


def _check_replies(sc: Scenario, out: Outcome) -> None:
    """``reply`` patterns matched in order; ``not_reply`` by none."""
    k = 0
    for pattern in sc.reply:
        while k < len(out.replies) and not re.search(pattern, out.replies[k], re.I):
            k += 1
        if k == len(out.replies):
            out.problems.append(f"no reply (from the one that matched the pattern before) matches /{pattern}/")
            break
    for pattern in sc.not_reply:
        for i, r in enumerate(out.replies, 1):
            if re.search(pattern, r, re.I):
                out.problems.append(f"reply {i} {_short(r)!r} matches /{pattern}/, which it must not")


def _check_left_message(want: dict, out: Outcome) -> None:
    """The last message left, against the expected one."""
    if not out.messages:
        out.problems.append("expected a message, none was left")
        return
    m = out.messages[-1]
    if "name" in want and m.name.strip().lower() != want["name"].strip().lower():
        out.problems.append(f"message name: expected {want['name']!r}, got {m.name!r}")
    if "callback_number" in want and not same_number(m.callback_number, want["callback_number"]):
        out.problems.append(f"message callback_number: expected {want['callback_number']!r}, got {m.callback_number!r}")
    if "about" in want and not re.search(want["about"], m.about, re.I):
        out.problems.append(f"message about: {_short(m.about)!r} does not match /{want['about']}/")
    for key in ("urgent", "complete"):
        if key in want and getattr(m, key) != want[key]:
            out.problems.append(f"message {key}: expected {str(want[key]).lower()}, got {str(getattr(m, key)).lower()}")


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
