"""The embedded dialogue: a rules-based receptionist, not a language model.

It answers opening hours (today, tomorrow, a weekday, or the week), the address and
a few FAQs from a JSON file the operator edits; takes a message over several turns
(what it is about, name, callback number, confirmation) and stores it in SQLite;
hands "a real person, please" to the call as a transfer; says goodbye and hangs up.
Transcripts come from speech recognition, so matching is on normalised words and
spoken digits. Per-call state lives in ``conversation.state["receptionist"]``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import AsyncIterator, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import UPSTREAM_ERROR, StageError
from bot.logs import kv
from bot.store import NewMessage, SqlStore, open_store
from bot.providers.base import Action, Conversation
from bot.settings import Settings

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2", "three": "3",
               "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
SPOKEN = "zero one two three four five six seven eight nine".split()
REQUIRED = ("business", "timezone", "hours", "address", "faqs", "transfer_phrases", "texts")
TEXT_KEYS = ("help", "anything_else", "not_understood", "offer_person", "no_person", "transferring", "goodbye", "here")

YES = {"yes", "yeah", "yep", "yup", "correct", "right", "sure", "please", "ok", "okay", "that's right", "it is"}
NO = {"no", "nope", "nah", "wrong", "incorrect", "not"}
GOODBYE = ("goodbye", "good bye", "bye", "that's all", "that is all", "that's it", "nothing else", "no thanks", "no thank you", "i'm done", "all set")
HOURS_WORDS = ("open", "opening", "close", "closing", "hours", "what time")
ADDRESS_WORDS = ("address", "where are you", "located", "location", "directions", "where is the office", "where's the office")
MESSAGE_WORDS = ("message", "call me back", "callback", "call back", "cancel", "appointment", "reschedule", "billing", "speak with billing")
REPEAT_WORDS = ("repeat", "say that again", "say again", "pardon", "come again", "one more time")
HERE_WORDS = ("anyone there", "anybody there", "are you there", "hello")
THIS_NUMBER = ("this number", "same number", "number i'm calling from", "number i am calling from", "calling from", "this one")


# what "I'd like to leave a message" says about the message: nothing
_FILLER = re.compile(
    r"\b(hi|hello|hey|yes|please|i'd|i|would|like|want|to|can|could|may|leave|take|a|an|message|messages|for|the|just)\b"
)


log = logging.getLogger("bot.providers.receptionist")

class ConfigError(ValueError):
    pass


def load_config(path: str | Path | None) -> dict:
    """Read and validate the receptionist's config; ``ConfigError`` names the file and the problem."""
    where = str(path) if path else "bot/receptionist.json (bundled)"
    try:
        raw = Path(path).read_text() if path else resources.files("bot").joinpath("receptionist.json").read_text()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    try:
        cfg["_tz"] = ZoneInfo(str(cfg["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {cfg['timezone']!r} (use an IANA name like America/New_York)") from None
    hours = cfg["hours"]
    if not isinstance(hours, dict) or set(hours) - set(DAYS):
        raise ConfigError(f"{where}: hours must map weekday names ({', '.join(DAYS)}) to [open, close] or null")
    parsed: dict[str, tuple[int, int] | None] = {}
    for day in DAYS:
        span = hours.get(day)
        if span is None:
            parsed[day] = None
            continue
        try:
            opens, closes = (_minutes(t) for t in span)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: hours.{day} must be [\"HH:MM\", \"HH:MM\"] or null, got {span!r}") from None
        if closes <= opens:
            raise ConfigError(f"{where}: hours.{day} closes before it opens")
        parsed[day] = (opens, closes)
    cfg["_hours"] = parsed
    for i, faq in enumerate(cfg["faqs"]):
        if not (isinstance(faq, dict) and isinstance(faq.get("keywords"), list) and isinstance(faq.get("answer"), str)):
            raise ConfigError(f"{where}: faqs[{i}] needs \"keywords\" (a list) and \"answer\" (text)")
    missing_texts = [k for k in TEXT_KEYS if not isinstance(cfg["texts"].get(k), str)]
    if missing_texts:
        raise ConfigError(f"{where}: texts is missing {', '.join(missing_texts)}")
    return cfg


def _minutes(hhmm: str) -> int:
    h, m = str(hhmm).split(":")
    h_, m_ = int(h), int(m)
    if not (0 <= h_ <= 24 and 0 <= m_ < 60):
        raise ValueError(hhmm)
    return h_ * 60 + m_


def clock_text(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    suffix = "AM" if h < 12 or h == 24 else "PM"
    h12 = h % 12 or 12
    return f"{h12} {suffix}" if m == 0 else f"{h12}:{m:02d} {suffix}"


def normalise(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    return " " + re.sub(r"\s+", " ", t).strip() + " "


def has(text: str, phrases) -> bool:
    return any(f" {p} " in text for p in phrases)


def digits_in(text: str) -> str:
    """Digits spoken or written: "five five five, 213-4467" -> "5552134467"."""
    out = []
    for tok in re.findall(r"[a-z]+|\d+", text.lower()):
        if tok.isdigit():
            out.append(tok)
        elif tok in DIGIT_WORDS and (tok not in ("o", "to", "too", "for") or out):
            out.append(DIGIT_WORDS[tok])
        elif tok == "double" or tok == "triple":
            out.append(tok)
    s = "".join(out)
    # "double five" -> "55"
    s = re.sub(r"double(\d)", r"\1\1", s)
    s = re.sub(r"triple(\d)", r"\1\1\1", s)
    return re.sub(r"\D", "", s)


def speak_number(number: str) -> str:
    """Digits in groups, as words, so any TTS reads them one by one."""
    d = re.sub(r"\D", "", number)
    groups = [d[:3], d[3:6], d[6:]] if len(d) == 10 else [d[:-4], d[-4:]] if len(d) > 4 else [d]
    return ", ".join(" ".join(SPOKEN[int(c)] for c in g) for g in groups if g)


def name_in(text: str) -> str | None:
    m = re.search(r"\b(?:my name is|my name's|this is|it's|i am|i'm|name is)\s+([a-z][a-z' -]*)", text, re.I)
    if not m:
        return None
    words = []
    for w in m.group(1).split():
        if w.lower() in ("and", "my", "number", "phone", "calling", "from", "here"):
            break
        words.append(w.strip("'").capitalize())
    return " ".join(words[:3]) or None


def caller_digits(caller: str) -> str:
    """The caller's number, if it is one (a phone number or a sip: URI with digits)."""
    user = caller.split("sip:", 1)[-1].split("@", 1)[0]
    d = re.sub(r"\D", "", user)
    return d[-10:] if len(d) >= 7 else ""


class Receptionist:
    name = "receptionist"

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self.cfg: dict = {}
        self.store: SqlStore | None = None

    async def start(self) -> None:
        self.cfg = load_config(self._settings.receptionist_config or None)
        self.store = await open_store(self._settings)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        if not self.cfg:
            await self.start()
        user = next((m["content"] for m in reversed(conversation.messages) if m.get("role") == "user"), "")
        st = conversation.state.setdefault("receptionist", {"misses": 0, "last": "", "awaiting": None, "form": None})
        try:
            sentences, action = await self._respond(str(user), st, conversation)
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise StageError("llm", UPSTREAM_ERROR, f"receptionist failed ({type(e).__name__})", provider=self.name) from None
        st["last"] = " ".join(sentences)
        for s in sentences:
            yield s + " "
        if action is not None:
            yield action

    # ------------------------------------------------------------------ dialogue
    async def _respond(self, raw: str, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        t = self.cfg["texts"]
        text = normalise(self._dtmf(raw))
        awaiting, st["awaiting"] = st.get("awaiting"), None

        if has(text, GOODBYE) or (awaiting == "anything_else" and self._no(text)):
            st["form"] = None
            return [t["goodbye"]], Action("hangup", "caller said goodbye")
        if self._wants_person(text) or (awaiting == "offer_person" and self._yes(text)):
            return self._transfer(st)
        if has(text, self.cfg.get("emergency", {}).get("keywords", [])) and st.get("form") is None:
            st["awaiting"] = "offer_message"
            return [self.cfg["emergency"]["answer"]], None
        if st.get("form") is not None:
            return await self._form(raw, text, st, conv), None
        if awaiting == "offer_message" and self._yes(text):
            return self._start_form("", st), None
        if awaiting == "offer_person" and self._no(text):
            st["misses"] = 0
            return [t["help"]], None

        if has(text, REPEAT_WORDS):
            return [st.get("last") or t["help"]], None
        if has(text, HOURS_WORDS) or " intent hours " in text:
            return self._done(st, [self._hours(text)]), None
        if has(text, ADDRESS_WORDS) or " intent address " in text:
            return self._done(st, [f"We're at {self.cfg['address']}"]), None
        for faq in self.cfg["faqs"]:
            if has(text, [k.lower() for k in faq["keywords"]]):
                st["misses"] = 0
                st["awaiting"] = "offer_message"
                return [faq["answer"], "Would you like to leave a message?"], None
        if has(text, MESSAGE_WORDS) or " intent message " in text:
            return self._start_form(raw, st), None
        if has(text, HERE_WORDS):
            return [t["here"], t["help"]], None
        if awaiting == "anything_else" and self._yes(text):
            return ["Sure, what can I help with?"], None

        st["misses"] = st.get("misses", 0) + 1
        if st["misses"] >= 2:
            st["awaiting"] = "offer_person"
            return [t["not_understood"], t["offer_person"]], None
        return [t["not_understood"], t["help"]], None

    def _dtmf(self, raw: str) -> str:
        m = re.fullmatch(r"\s*DTMF\s+(\d+)\s*", raw)
        if not m:
            return raw
        intent = self.cfg.get("dtmf", {}).get(m.group(1)) if len(m.group(1)) == 1 else None
        return f"intent {intent}" if intent else raw

    def _done(self, st: dict, sentences: list[str]) -> list[str]:
        st["misses"] = 0
        st["awaiting"] = "anything_else"
        return [*sentences, self.cfg["texts"]["anything_else"]]

    def _wants_person(self, text: str) -> bool:
        return has(text, [p.lower() for p in self.cfg["transfer_phrases"]]) or " intent transfer " in text

    def _transfer(self, st: dict) -> tuple[list[str], Action | None]:
        st["misses"] = 0
        if self._settings.transfer_number:
            return [self.cfg["texts"]["transferring"]], Action("transfer", "caller asked for a person")
        return [self.cfg["texts"]["no_person"], *self._start_form("", st)], None

    @staticmethod
    def _yes(text: str) -> bool:
        return has(text, YES) and not has(text, ("no", "not"))

    @staticmethod
    def _no(text: str) -> bool:
        return has(text, NO) and not has(text, ("yes", "yeah"))

    # ------------------------------------------------------------------ hours
    def _now(self) -> datetime:
        tz = self.cfg["_tz"]
        return self._clock().astimezone(tz) if self._clock else datetime.now(tz)

    def _hours(self, text: str) -> str:
        today = self._now()
        if " tomorrow " in text:
            return self._day_hours(today + timedelta(days=1), "Tomorrow")
        if " today " in text or " tonight " in text or " now " in text:
            return self._day_hours(today, "Today")
        for i, day in enumerate(DAYS):
            if f" {day} " in text or f" {day}s " in text:
                ahead = (i - today.weekday()) % 7
                return self._day_hours(today + timedelta(days=ahead), None)
        return self._week()

    def _day_hours(self, when: datetime, label: str | None) -> str:
        day = DAYS[when.weekday()]
        span = self.cfg["_hours"][day]
        who = f"{label}, {day.capitalize()}," if label else f"On {day.capitalize()}s"
        if span is None:
            nxt = self._next_open(when)
            again = f" We open again on {nxt[0].capitalize()} at {clock_text(nxt[1])}." if nxt else ""
            return f"{who} we're closed.{again}"
        return f"{who} we open at {clock_text(span[0])} and close at {clock_text(span[1])}."

    def _next_open(self, when: datetime) -> tuple[str, int] | None:
        for k in range(1, 8):
            day = DAYS[(when.weekday() + k) % 7]
            if self.cfg["_hours"][day]:
                return day, self.cfg["_hours"][day][0]
        return None

    def _week(self) -> str:
        runs: list[tuple[list[str], tuple[int, int] | None]] = []
        for day in DAYS:
            span = self.cfg["_hours"][day]
            if runs and runs[-1][1] == span:
                runs[-1][0].append(day)
            else:
                runs.append(([day], span))
        parts, closed = [], []
        for days, span in runs:
            name = days[0].capitalize() if len(days) == 1 else f"{days[0].capitalize()} to {days[-1].capitalize()}"
            if span is None:
                closed.append(name)
            else:
                parts.append(f"{name}, {clock_text(span[0])} to {clock_text(span[1])}")
        out = "We're open " + "; ".join(parts) + "." if parts else "We're closed all week."
        if closed and parts:
            out += f" We're closed on {' and '.join(closed)}."
        return out

    # ------------------------------------------------------------------ message form
    def _start_form(self, raw: str, st: dict) -> list[str]:
        st["misses"] = 0
        topic = raw.strip() if len(_FILLER.sub(" ", normalise(raw)).split()) >= 2 else ""
        st["form"] = {"topic": topic, "name": None, "number": None, "step": "name" if topic else "topic"}
        return ["Sure, I can take a message.", "May I have your name?" if topic else "What is the message about?"]

    async def _form(self, raw: str, text: str, st: dict, conv: Conversation) -> list[str]:
        f = st["form"]
        mine = caller_digits(conv.caller)
        if f["step"] == "topic":
            f["topic"] = raw.strip()
            f["step"] = "name"
            return ["Thanks.", "May I have your name?"]
        if f["step"] == "name":
            f["name"] = name_in(raw) or " ".join(w.capitalize() for w in text.split()[:3])
            number = digits_in(raw)
            if len(number) >= 7:
                f["number"] = number
                f["step"] = "confirm"
                return [f"Thanks, {f['name']}.", f"I have your number as {speak_number(number)}. Is that right?"]
            f["step"] = "number"
            if mine:
                return [f"Thanks, {f['name']}.", "What number should we call you back on? Or say this number, for the one you're calling from."]
            return [f"Thanks, {f['name']}.", "What number should we call you back on?"]
        if f["step"] == "number":
            number = digits_in(raw)
            if len(number) < 7 and mine and (has(text, THIS_NUMBER) or self._yes(text)):
                number = mine
            if len(number) < 7:
                return ["Sorry, I didn't get the number.", "Could you say it again, digit by digit?"]
            f["number"] = number
            f["step"] = "confirm"
            return [f"I have {speak_number(number)}. Is that right?"]
        # confirm
        number = digits_in(raw)
        if len(number) >= 7:
            f["number"] = number
            return [f"I have {speak_number(number)}. Is that right?"]
        if self._no(text):
            f["step"] = "number"
            return ["Sorry about that.", "What number should we call you back on?"]
        if not self._yes(text):
            return [f"Is {speak_number(f['number'])} the right number? Please say yes or no."]
        assert self.store is not None
        message_id = await self.store.save_message(NewMessage(call_sid=conv.call_id, caller=conv.caller, name=f["name"] or "", callback_number=f["number"], about=f["topic"] or ""))
        conv.state["message_id"] = message_id  # the call's outcome: a message was left
        log.info("message saved", extra=kv(message_id=message_id, call_sid=conv.call_id))
        st["form"] = None
        st["awaiting"] = "anything_else"
        return [f"Thanks, {f['name']}. I've passed your message on, and someone will call you back.", self.cfg["texts"]["anything_else"]]
