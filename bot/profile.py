"""The business profile: one human-edited TOML file that both the receptionist and the LLM
work from (name, timezone, hours, closures, address, FAQs, texts, emergencies, transfer
targets, who is notified). ``load_profile`` checks the whole file and raises one
``ProfileError`` listing every problem, each naming the key and what it accepts.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.assets import DEFAULT_BUSINESS_FILE
from bot.settings import SettingsError

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_FILE = DEFAULT_BUSINESS_FILE  # bundled: the checkout's examples/business, or inside the wheel
PURPOSES = ("front_desk", "on_call")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Span = tuple[int, int]  # minutes after midnight: (opens, closes)


class ProfileError(SettingsError):
    """The business file has problems; the message lists all of them."""


@dataclass(frozen=True)
class Faq:
    question: str
    keywords: tuple[str, ...]
    answer: str
    examples: tuple[str, ...] = ()  # other ways callers ask it (matched by meaning)


@dataclass(frozen=True)
class Emergency:
    keywords: tuple[str, ...] = ()
    say: str = ""
    transfer: str = ""  # a purpose (see Transfer), "" = take an urgent message instead
    situations: tuple[str, ...] = ()  # what counts as an emergency, described (matched by meaning)
    # said first for a fire, gas or a danger to life (the loader picks the region's number)
    danger_say: str = "If anyone is in danger, or there is a fire or a smell of gas, please hang up and call 911 now."

    @property
    def configured(self) -> bool:
        return bool(self.keywords or self.situations)


@dataclass(frozen=True)
class Transfer:
    front_desk: str = ""  # in opening hours only
    on_call: str = ""  # emergencies, any time
    no_answer_s: int = 25


@dataclass(frozen=True)
class Notify:
    """Who is told about messages (read by the outbox). ``urgent_*`` empty = the normal target."""

    webhook_url: str = ""
    email_to: tuple[str, ...] = ()
    sms_to: tuple[str, ...] = ()
    urgent_webhook_url: str = ""
    urgent_email_to: tuple[str, ...] = ()
    urgent_sms_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Texts:
    greeting: str = "Hello, thanks for calling. How can I help you today?"
    goodbye: str = "Thanks for calling. Goodbye."
    fallback: str = "Sorry, I didn't catch that. Could you say it again?"


@dataclass(frozen=True)
class Profile:
    name: str
    timezone: str
    hours: dict[str, Span | None]  # weekday -> span, None = closed
    address: str
    closures: dict[date, str] = field(default_factory=dict)  # date -> reason
    faqs: tuple[Faq, ...] = ()
    texts: Texts = Texts()
    emergency: Emergency = Emergency()
    transfer: Transfer = Transfer()
    notify: Notify = Notify()
    source: str = ""
    unit_question: str = ""  # [message] unit_question: the message form also asks this (a unit or address); "" = not asked

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, when: datetime | None = None) -> datetime:
        """``when`` (aware; default now) in the business's timezone."""
        return (when or datetime.now(self.tz)).astimezone(self.tz)

    def span_on(self, day: date) -> Span | None:
        """Opening hours on a date: None when closed (weekly hours or a closure)."""
        if day in self.closures:
            return None
        return self.hours[DAYS[day.weekday()]]

    def is_open(self, when: datetime) -> bool:
        t = self.local(when)
        span = self.span_on(t.date())
        return span is not None and span[0] <= t.hour * 60 + t.minute < span[1]

    def next_opening(self, when: datetime) -> datetime | None:
        """The next time the business opens after ``when`` (within two weeks)."""
        t = self.local(when)
        for k in range(15):
            d = t.date() + timedelta(days=k)
            span = self.span_on(d)
            if span is None:
                continue
            opens = datetime(d.year, d.month, d.day, span[0] // 60, span[0] % 60, tzinfo=self.tz)
            if opens > t:
                return opens
        return None

    def transfer_number(self, purpose: str, when: datetime) -> str:
        """The number for ``purpose`` now: the front desk only while open; "" if none."""
        if purpose in ("emergency", "on_call"):
            return self.transfer.on_call
        if purpose == "front_desk" and self.is_open(when):
            return self.transfer.front_desk
        return ""


def load_profile(path: str | Path | None = None) -> Profile:
    """Read and check the business file (default: the bundled property office)."""
    where = Path(path) if path else DEFAULT_FILE
    try:
        raw = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProfileError(f"BUSINESS_FILE {where}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"BUSINESS_FILE {where}: not valid TOML ({e})") from None
    errors: list[str] = []
    profile = _build(raw, errors, str(where))
    if errors:
        listed = "\n".join(f"  - {e}" for e in errors)
        raise ProfileError(f"BUSINESS_FILE {where} has {len(errors)} problem(s):\n{listed}")
    assert profile is not None
    return profile


# ---------------------------------------------------------------- checking


def _build(raw: dict[str, Any], errors: list[str], source: str) -> Profile | None:
    known = {"name", "timezone", "address", "hours", "closures", "faqs", "texts", "emergency", "transfer", "notify", "message"}
    for key in sorted(set(raw) - known):
        errors.append(f"{key}: unknown key (expected one of {', '.join(sorted(known))})")
    name = _text(raw, "name", errors)
    address = _text(raw, "address", errors)
    tzname = _text(raw, "timezone", errors)
    if tzname:
        try:
            ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f"timezone: unknown timezone {tzname!r} (use an IANA name such as America/New_York)")
    hours = _hours(raw.get("hours"), errors)
    closures = _closures(raw.get("closures", []), errors)
    faqs = _faqs(raw.get("faqs", []), errors)
    texts = _section(raw, "texts", errors)
    t = Texts(**{k: _text(texts, k, errors, f"texts.{k}", default=getattr(Texts, k)) for k in ("greeting", "goodbye", "fallback")})
    _unknown(texts, ("greeting", "goodbye", "fallback"), "texts", errors)
    em = _section(raw, "emergency", errors)
    _unknown(em, ("keywords", "situations", "say", "danger_say", "transfer"), "emergency", errors)
    emergency = Emergency(
        keywords=_strings(em, "keywords", errors, "emergency.keywords"),
        say=_text(em, "say", errors, "emergency.say", default=""),
        transfer=_text(em, "transfer", errors, "emergency.transfer", default=""),
        situations=_phrases(em, "situations", errors, "emergency.situations"),
        danger_say=_text(em, "danger_say", errors, "emergency.danger_say", default="") or _danger_line(tzname),
    )
    if emergency.configured and not emergency.say:
        errors.append("emergency.say: required when emergency.keywords or emergency.situations is set (what to tell the caller)")
    if emergency.transfer and emergency.transfer not in PURPOSES:
        errors.append(f"emergency.transfer: {emergency.transfer!r} is not a purpose (expected one of {', '.join(PURPOSES)}, or leave it out)")
    tr = _section(raw, "transfer", errors)
    _unknown(tr, (*PURPOSES, "no_answer_s"), "transfer", errors)
    numbers = {p: _phone(tr, p, errors, f"transfer.{p}") for p in PURPOSES}
    timeout = tr.get("no_answer_s", Transfer.no_answer_s)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 5 <= timeout <= 120:
        errors.append(f"transfer.no_answer_s: {timeout!r} is not accepted (expected whole seconds between 5 and 120)")
        timeout = Transfer.no_answer_s
    if emergency.transfer and emergency.transfer in PURPOSES and not numbers[emergency.transfer]:
        errors.append(f"emergency.transfer: {emergency.transfer!r} has no number (set transfer.{emergency.transfer})")
    notify = _notify(_section(raw, "notify", errors), errors)
    message = _section(raw, "message", errors)
    _unknown(message, ("unit_question",), "message", errors)
    unit_question = _text(message, "unit_question", errors, "message.unit_question", default="")
    if errors:
        return None
    return Profile(
        name=name, timezone=tzname, hours=hours, address=address, closures=closures, faqs=faqs, texts=t,
        emergency=emergency, transfer=Transfer(no_answer_s=timeout, **numbers), notify=notify, source=source,
        unit_question=unit_question,
    )


def _text(d: dict, key: str, errors: list[str], label: str | None = None, *, default: str | None = None) -> str:
    v = d.get(key, default)
    if v is None:
        errors.append(f"{label or key}: required (text)")
        return ""
    if not isinstance(v, str) or (default is None and not v.strip()):
        errors.append(f"{label or key}: expected text, got {v!r}")
        return ""
    return v.strip()


def _section(raw: dict, key: str, errors: list[str]) -> dict:
    v = raw.get(key, {})
    if not isinstance(v, dict):
        errors.append(f"{key}: expected a table ([{key}])")
        return {}
    return v


def _unknown(d: dict, allowed: tuple[str, ...], where: str, errors: list[str]) -> None:
    for k in sorted(set(d) - set(allowed)):
        errors.append(f"{where}.{k}: unknown key (expected one of {', '.join(allowed)})")


def _strings(d: dict, key: str, errors: list[str], label: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        errors.append(f"{label}: expected a list of words or phrases, got {v!r}")
        return ()
    return tuple(x.strip().lower() for x in v)


def _phrases(d: dict, key: str, errors: list[str], label: str) -> tuple[str, ...]:
    """A list of sentences as written (case kept: they are matched by meaning)."""
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        errors.append(f"{label}: expected a list of sentences, got {v!r}")
        return ()
    return tuple(" ".join(x.split()) for x in v)


def _danger_line(tzname: str) -> str:
    """What to say first for a fire, gas or a danger to life, by the business's region."""
    number = "999" if tzname in ("Europe/London", "Europe/Belfast", "Europe/Dublin") else "112" if tzname.startswith("Europe/") \
        else "000" if tzname.startswith("Australia/") else "911"
    return f"If anyone is in danger, or there is a fire or a smell of gas, please hang up and call {number} now."


def _phone(d: dict, key: str, errors: list[str], label: str) -> str:
    v = d.get(key, "")
    if not isinstance(v, str) or (v and not _PHONE.match(re.sub(r"[\s().-]", "", v))):
        errors.append(f"{label}: {v!r} is not a phone number (expected E.164 such as +15550100100)")
        return ""
    return re.sub(r"[\s().-]", "", v)


def _minutes(h: str, m: str) -> int | None:
    hh, mm = int(h), int(m)
    return hh * 60 + mm if (0 <= hh <= 24 and 0 <= mm < 60 and hh * 60 + mm <= 1440) else None


def _hours(v: Any, errors: list[str]) -> dict[str, Span | None]:
    out: dict[str, Span | None] = dict.fromkeys(DAYS)
    if not isinstance(v, dict):
        errors.append("hours: required table, one key per weekday (monday ... sunday) = \"09:00-17:00\" or \"closed\"")
        return out
    for key in sorted(set(v) - set(DAYS)):
        errors.append(f"hours.{key}: not a weekday (expected {', '.join(DAYS)})")
    for day in DAYS:
        span = v.get(day, "closed")
        if isinstance(span, str) and span.strip().lower() == "closed":
            continue
        m = _SPAN.match(span) if isinstance(span, str) else None
        opens = _minutes(m.group(1), m.group(2)) if m else None
        closes = _minutes(m.group(3), m.group(4)) if m else None
        if opens is None or closes is None:
            errors.append(f"hours.{day}: {span!r} is not accepted (expected \"HH:MM-HH:MM\" such as \"09:00-17:00\", or \"closed\")")
        elif closes <= opens:
            errors.append(f"hours.{day}: {span!r} closes before it opens")
        else:
            out[day] = (opens, closes)
    return out


def _closures(v: Any, errors: list[str]) -> dict[date, str]:
    out: dict[date, str] = {}
    if not isinstance(v, list):
        errors.append("closures: expected a list of [[closures]] tables with date = YYYY-MM-DD and reason")
        return out
    for i, item in enumerate(v):
        d = item.get("date") if isinstance(item, dict) else None
        if not isinstance(d, date) or isinstance(d, datetime):
            errors.append(f"closures[{i}].date: expected a date written YYYY-MM-DD (no quotes), got {d!r}")
            continue
        reason = item.get("reason", "a holiday")
        if not isinstance(reason, str):
            errors.append(f"closures[{i}].reason: expected text, got {reason!r}")
            continue
        out[d] = reason.strip() or "a holiday"
    return out


def _faqs(v: Any, errors: list[str]) -> tuple[Faq, ...]:
    if not isinstance(v, list):
        errors.append("faqs: expected a list of [[faqs]] tables with a question (and examples or keywords) and an answer")
        return ()
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            errors.append(f"faqs[{i}]: expected a table with keywords (a list) and answer (text)")
            continue
        n = len(errors)
        kws = _strings(item, "keywords", errors, f"faqs[{i}].keywords")
        answer = _text(item, "answer", errors, f"faqs[{i}].answer")
        question = _text(item, "question", errors, f"faqs[{i}].question", default="")
        examples = _phrases(item, "examples", errors, f"faqs[{i}].examples")
        if not (kws or question or examples):
            errors.append(f"faqs[{i}]: needs a question (or examples, or keywords) to know when to answer it")
        _unknown(item, ("question", "examples", "keywords", "answer"), f"faqs[{i}]", errors)
        if len(errors) == n:
            out.append(Faq(question, kws, answer, examples))
    return tuple(out)


def _notify(d: dict, errors: list[str]) -> Notify:
    keys = [f.name for f in fields(Notify)]
    _unknown(d, tuple(keys), "notify", errors)
    kw: dict[str, Any] = {}
    for prefix in ("", "urgent_"):
        url = d.get(prefix + "webhook_url", "")
        if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
            errors.append(f"notify.{prefix}webhook_url: {url!r} is not accepted (expected an http(s):// URL or \"\")")
            url = ""
        kw[prefix + "webhook_url"] = url
        for key, check, what in (("email_to", _EMAIL, "email addresses"), ("sms_to", _PHONE, "E.164 phone numbers")):
            vals = d.get(prefix + key, [])
            if not isinstance(vals, list) or not all(isinstance(x, str) and check.match(x.strip()) for x in vals):
                errors.append(f"notify.{prefix}{key}: expected a list of {what}, got {vals!r}")
                vals = []
            kw[prefix + key] = tuple(x.strip() for x in vals)
    return Notify(**kw)


@functools.lru_cache(maxsize=8)
def cached_profile(path: str = "") -> Profile:
    """The profile for a path, read once per process (the call session and the
    providers share it; start-up has already checked it)."""
    return load_profile(path or None)


def prompt_texts_from(settings: Any, profile: Profile) -> dict[str, str]:
    """Greeting, goodbye and fallback from the profile; GREETING_TEXT, GOODBYE_TEXT and
    FALLBACK_TEXT, when set, still win (they override the file)."""
    from bot.settings import DEFAULT_FALLBACK, DEFAULT_GOODBYE, DEFAULT_GREETING

    def pick(value: str, default: str, mine: str) -> str:
        return value if value and value != default else mine

    return {
        "greeting": pick(settings.greeting_text, DEFAULT_GREETING, profile.texts.greeting),
        "fallback": pick(settings.fallback_text, DEFAULT_FALLBACK, profile.texts.fallback),
        "goodbye": pick(settings.goodbye_text, DEFAULT_GOODBYE, profile.texts.goodbye),
    }


TRANSFER_TEXT = "Please hold while I connect you."


def prompt_texts(settings: Any) -> dict[str, str]:
    """Every fixed prompt's text (bot/prompts.py renders them), from the business file and the settings."""
    texts = prompt_texts_from(settings, cached_profile(settings.business_file))
    return {
        "greeting": texts["greeting"],
        "fallback": texts["fallback"],
        "trouble": settings.trouble_text,
        "reprompt": settings.reprompt_text,
        "goodbye": texts["goodbye"],
        "busy": settings.busy_text,
        "transfer": TRANSFER_TEXT,
    }
