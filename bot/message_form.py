"""The receptionist's message form: a name, a callback number and what it is about (and a
unit or address where the business asks for one), taken from whatever the caller says, in
any order, all at once or one by one.

Each utterance is read for every field (``bot.message_fields``, with ``bot.names``,
``bot.phone_numbers`` and ``bot.places``). The form asks only for what is still missing,
offers the number the caller is calling from, reads back what it has and takes corrections
("no, it ends 5309", "my name is Marc with a c", "sorry, the number is ..."); a caller may
decline to give a name, a number or an address, and the message goes without it. It lives
in ``conversation.state["receptionist"]["form"]`` (plain data), and what was heard so far
is mirrored in ``conversation.state[PENDING_MESSAGE]`` (name, callback_number, about,
urgent) after every turn, so a caller who hangs up mid-form leaves an incomplete message.
"""

from __future__ import annotations

import re
from enum import Enum

from bot.conversation import PENDING_MESSAGE, Action, Conversation
from bot.language import MAX_DIGITS, MAX_TEXT, Words, caller_digits, unit_in
from bot.message_fields import (
    NO_CALLBACK,
    NOT_THIS,
    THIS_NUMBER,
    absorb,
    answer_of,
    said_this_number,
    spelt_name,
    topic_into,
    which_part,
)
from bot.message_topic import DTMF, TOPIC_MAX, about_of, flip, mostly_digits, topic_text
from bot.name_words import TITLES
from bot.names import bare_name, refuses_name
from bot.phone_numbers import digits_of, national, number_runs, phone_in, speak_number
from bot.places import refuses_place
from bot.store.api import NewMessage

ANYTHING_ELSE = "Is there anything else I can help with?"
ASK_TOPIC = "What is the message about?"
ASK_NAME = "May I have your name?"
ASK_NUMBER = "What number should we call you back on? You can also key it in on your phone, then press the hash key."
TOO_LONG = (f"Sorry, that's more digits than a phone number has; a phone number has at most {MAX_DIGITS} digits. "
            "Could you give me the number again?")


def new_form(topic: str = "", *, urgent: bool = False, unit_question: str = "") -> dict:
    return {"topic": topic, "name": None, "number": None, "urgent": urgent, "asked": None, "offered": False,
            "name_tries": 0, "number_tries": 0, "topic_tries": 0, "to": "", "partial": "", "one_word": False,
            "unit_q": unit_question, "unit": "", "unit_tries": 0}


def sync(st: dict, conv: Conversation) -> None:
    """Mirror the form into ``conversation.state[PENDING_MESSAGE]`` (the fields heard so far)."""
    f = st["form"]
    conv.state[PENDING_MESSAGE] = {"name": f["name"] or "", "callback_number": f["number"] or "",
                                   "about": _about(f), "urgent": bool(f["urgent"])}


def _about(f: dict) -> str:
    """The topic, with who it is for and the unit when the caller said them
    ("For the leasing office, Unit 4C: ...")."""
    head = ", ".join(x[0].upper() + x[1:] for x in (f.get("to") or "", f.get("unit") or "") if x)
    topic = topic_text(f)
    if head and topic:
        return f"{head}: {topic}"
    return topic or head


def drop(st: dict, conv: Conversation) -> None:
    st["form"] = None
    st.pop("form_emergency", None)
    conv.state.pop(PENDING_MESSAGE, None)


def start(st: dict, conv: Conversation, topic: str, *, urgent: bool = False, unit_question: str = "") -> list[str]:
    """Open the form: read the caller's last words for every field (all at once is fine),
    ``topic`` being what an earlier turn was about; the first sentence is an opening that
    a caller of this may replace; then the question for what is missing."""
    f = st["form"] = new_form(urgent=urgent, unit_question=unit_question)
    topic_into(f, topic)
    mine = caller_digits(conv.caller)
    problem = ""
    # a name or number said before (in the last few turns or with the request); what it is about is ``topic``
    for words in [*_recent_user(conv, 4), topic]:
        if words and not DTMF.fullmatch(words):
            problem = absorb(f, words[:MAX_TEXT], Words(words[:MAX_TEXT]), asked="start") or problem
    # "is it an emergency?" -- "Tom Bennett": a name given alone, out of turn (or the surname of one given before)
    bare = next((n for words in reversed(_recent_user(conv, 2))
                 if (n := bare_name(words, whole=True) or spelt_name(words) or _name_then_number(words)) and len(n.split()) >= 2), None)
    if bare and (f["name"] is None or bare.split()[0].lower() == f["name"].lower()):
        f["name"] = bare
    if f["number"] is None and mine and any(said_this_number(words) for words in _recent_user(conv, 1)):
        f["number"] = mine  # "yes, a message please, you can call me back on this number"
    f["urgent"] = f["urgent"] or any(said_urgent(words) for words in [*_recent_user(conv, 4), topic] if words)
    sync(st, conv)
    if problem == "long" and f["topic"]:
        f["asked"] = "number"
        return ["Sure, I can take a message.", TOO_LONG]
    return ["Sure, I can take a message.", *next_question(f, mine)]


_URGENT = re.compile(r"\b(?:urgent|urgently|asap|as soon as possible)\b", re.I)
_NOT_URGENT = re.compile(r"\b(?:not|isn't|nothing|no|never)\s+(?:\w+\s+){0,2}(?:urgent|urgently|asap)\b", re.I)


def said_urgent(words: str) -> bool:
    """The caller said the message is urgent ("it's not an emergency but it is urgent"), not
    that it isn't ("nothing urgent")."""
    return len(_URGENT.findall(words)) > len(_NOT_URGENT.findall(words))


def repeat_question(f: dict, mine: str) -> list[str]:
    """The form's question again, after an aside."""
    if f.get("asked") == "caller_id":
        f["offered"] = False
    return ["Now, for your message:", *next_question(f, mine)]


def answers_question(raw: str, w: Words, st: dict) -> bool:
    """The caller's words answer the form's question (a number, or yes / no to a read-back or
    to the caller-ID offer), so "no thanks" or "yes, that's it" is not a goodbye."""
    f = st.get("form") or {}
    if DTMF.fullmatch(raw) or any(len(r) >= 3 for r in number_runs(raw)):
        return True
    return f.get("asked") in ("confirm", "caller_id") and answer_of(w) is not None


async def advance(raw: str, w: Words, st: dict, conv: Conversation) -> list[str]:
    """One caller turn inside the form: the next question, or the message saved (through
    ``Conversation.perform``, before the caller hears it was passed on)."""
    f = st["form"]
    f["urgent"] = f["urgent"] or said_urgent(raw)  # "please put it down as urgent", said whenever
    out = step(f, raw, w, caller_digits(conv.caller))
    sync(st, conv)
    if out is not None:
        return out
    msg = NewMessage(call_sid=conv.call_id, caller=conv.caller, name=f["name"] or "", callback_number=f["number"] or "",
                     about=_about(f), urgent=bool(f["urgent"]))
    if not await conv.perform(Action("take_message", "caller confirmed the message", message=msg)):
        return ["I'm sorry, I couldn't save your message just now.", "Please try calling again a little later."]
    drop(st, conv)
    st["awaiting"] = "anything_else"
    thanks = f"Thanks, {addressed(f['name'])}." if f["name"] else "Thank you."
    later = ", and someone will call you back." if f["number"] else "."
    return [f"{thanks} I've passed your message on{later}", ANYTHING_ELSE]


_ADDS = re.compile(r"^\W*(?:yes|yeah|yep|yup|correct|that's right)\W+(?:and|but|plus|also|oh and)\b", re.I)
_ANSWER_START = {"yes", "yeah", "yep", "yup", "no", "nope", "nah", "correct", "wrong", "right", "that's", "thats", "it's", "its",
                 "perfect", "great", "lovely", "ok", "okay", "sure", "fine", "almost", "nearly", "not", "actually", "sorry"}


class _Go(Enum):
    ON = 0  # a step of ``step`` has nothing to say: the next one decides


def step(f: dict, raw: str, w: Words, mine: str) -> list[str] | None:
    """The form's next words after the caller's ``raw``; None when they confirmed the read-back."""
    asked = f["asked"]
    raw = raw[:MAX_TEXT] if not DTMF.fullmatch(raw) else raw  # keys are judged whole (a long number is refused)
    before = (f["name"], f["number"], f["topic"], f.get("unit"))
    said: list[str] = []
    key = DTMF.fullmatch(raw)
    answer, early = _keys(f, key.group(1), asked) if key else _words(f, raw, w, asked, before)
    if early is not None:
        return early
    if f["number"] is None and mine and asked != "caller_id" and said_this_number(raw):
        f["number"] = mine  # "this number's fine, and the house is 3 Moor Lane": the offer answered before it was made
    changed = (f["name"], f["number"], f["topic"], f.get("unit")) != before
    if f["name"] and not before[0]:
        said.append(f"Thanks, {addressed(f['name'])}.")
    if asked in ("caller_id", "number") and f["number"] is None and NO_CALLBACK.search(raw):
        f["number"], f["partial"] = "", ""  # "I'd rather not give a number", "no need to call me back": none
        return said + next_question(f, mine)
    reply = _yes_or_no(f, w, asked, answer, changed, mine)
    if reply is not _Go.ON:
        return reply
    changed, early = _number_in_parts(f, raw, w, asked, changed, keyed=bool(key), fresh=before[1] is None)
    if early is not None:
        return early
    early = _missing_number(f, w, asked, answer, changed, mine) or _missing_field(f, w, asked, answer, changed)
    if early is not None:
        return early
    if f["number"] and not before[1] and asked not in ("number", "caller_id") and not said:
        said.append("Thanks, I have your number.")
    return said + next_question(f, mine)


def _keys(f: dict, keyed: str, asked: str | None) -> tuple[str | None, list[str] | None]:
    """Keys pressed: a yes (1) or no (2) to a question that takes one, else a phone number.
    (The caller's answer, and the reply when the keys cannot be taken.)"""
    digits = re.sub(r"\D", "", keyed)
    if asked in ("confirm", "caller_id") and digits in ("1", "2"):
        return ("yes" if digits == "1" else "no"), None
    if len(digits) > MAX_DIGITS:
        f["asked"] = "number"
        return None, [TOO_LONG]
    if len(digits) >= 7:
        f["number"] = digits
        return None, None
    f["asked"] = "number"
    return None, ["Sorry, that's too few digits for a phone number.", "Please key in the whole number, then press the hash key."]


def _words(f: dict, raw: str, w: Words, asked: str | None, before: tuple) -> tuple[str | None, list[str] | None]:
    """Words said: every field they give. (The caller's yes or no, and the reply when it
    cannot wait: a number too long, or which field to change.)"""
    answer = answer_of(w)
    problem = absorb(f, raw, w, asked=asked)
    if problem == "long":
        f["asked"] = "number"
        return answer, [TOO_LONG]
    if asked == "which" and (f["name"], f["number"], f["topic"], f.get("unit")) == before:
        which = which_part(w, f)
        if which:
            return answer, _ask_again(f, which, ASK_NUMBER)
    return answer, None


def _yes_or_no(f: dict, w: Words, asked: str | None, answer: str | None, changed: bool, mine: str) -> list[str] | None | _Go:
    """The answer to "call you back on this number?" or to the read-back."""
    if asked == "caller_id" and not changed:
        other = NOT_THIS.search(w.raw) is not None  # "no, don't call this one", "not this number"
        if not other and (answer == "yes" or (mine and w.has(*THIS_NUMBER))):
            f["number"] = mine
        elif answer == "no" or other:
            f["asked"] = "number"
            start = "".join(number_runs(w.raw))
            if 0 < len(start) < 7:  # "no, ring the landline, it's oh one one three": the rest comes next
                f["partial"] = start
                return ["Okay.", "And the rest of the number?"]
            return ["Okay.", "What number should we call you back on?"]
    if asked == "confirm" and not changed:
        more = about_of(w.raw)
        if (len(Words(more).content()) >= 4 and w.words and w.words[0] not in _ANSWER_START
                and more.lower() not in (f["topic"] or "").lower()):  # "my package went to the wrong door, ...": what it is about
            f["topic"] = f"{f['topic']}; {more}"[:TOPIC_MAX] if f["topic"] else more
            return [_readback(f)]
        if answer == "yes" and _ADDS.match(w.raw) and len(Words(more).content()) >= 3 and more.lower() not in (f["topic"] or "").lower():
            f["topic"] = f"{f['topic']}; {more}"[:TOPIC_MAX] if f["topic"] else more  # "yes, and tell them the gate code is 4411"
            return [_readback(f)]
        if answer == "yes":
            return None
        if answer == "no":
            return _put_right(f, w)
        if answer is None and len(Words(more).content()) >= 3 and more.lower() not in (f["topic"] or "").lower():
            f["topic"] = f"{f['topic']}; {more}"[:TOPIC_MAX] if f["topic"] else more  # what it is about, told at the read-back
            return [_readback(f)]
        return [_readback(f) + " Please say yes or no."]
    return _Go.ON


def _put_right(f: dict, w: Words) -> list[str]:
    """ "No" to the read-back: what was said wrong, put right as said or asked for again."""
    which = which_part(w, f)
    fixed = about_of(w.raw, name="")  # no name is being put right here: "it's veneers" is what it is about
    if which == "topic" and len(Words(fixed).content()) >= 2:  # "no, it's veneers I'm after, not whitening": as said, after it
        f["topic"] = f"{f['topic']}; {fixed}"[:TOPIC_MAX] if f["topic"] else fixed[:TOPIC_MAX]
        return ["Sorry about that.", _readback(f)]
    if which:  # "no, wrong number": ask for that again
        return ["Sorry about that.", *_ask_again(f, which, "What number should we call you back on?")]
    f["asked"] = "which"
    return ["Sorry about that.", "What should I change: your name, the number, or what it's about?"]


def _number_in_parts(
    f: dict, raw: str, w: Words, asked: str | None, changed: bool, *, keyed: bool, fresh: bool,
) -> tuple[bool, list[str] | None]:
    """The number said a breath at a time: its parts gather in ``partial``. (Whether a
    field changed now, and the reply while the parts are still coming.)"""
    start = f.get("partial", "")
    got = digits_of(f["number"] or "")
    if fresh and not start and not keyed and " ext " not in (f["number"] or "") and (
            8 <= len(got) <= 9 or (7 <= len(got) < 10 and got.startswith("0"))):
        f["number"], f["partial"] = None, got  # "oh seven seven double oh, nine double oh": the rest is coming
        return False, ["Go on."]
    if start and f["number"] and len(f["number"]) < 10 and len(start + f["number"]) <= MAX_DIGITS and not keyed:
        f["number"], f["partial"] = national(start + f["number"]), ""  # "oh one one three" ... "four nine six oh five five two"
        return True, None
    pieces = "".join(number_runs(raw)) if not keyed and f["number"] is None else ""
    if changed and len(pieces) < 3:  # with another field: "my dog is 6" is no start of a number
        pieces = ""
    if pieces and (asked in ("number", "caller_id") or f.get("partial") or mostly_digits(w)):
        f["partial"] = f.get("partial", "") + pieces
        if len(f["partial"]) > MAX_DIGITS:
            f["partial"], f["asked"] = "", "number"
            return changed, [TOO_LONG]
        if len(f["partial"]) < 10:  # 7 to 9 digits: taken once the caller says something else
            return changed, ["Go on."]
        f["number"], f["partial"] = national(f["partial"]), ""
        changed = True
    elif f.get("partial") and f["number"] is None and not pieces:
        if len(f["partial"]) >= 7:
            f["number"], changed = f["partial"], True
        f["partial"] = ""
    return changed, None


def _missing_number(f: dict, w: Words, asked: str | None, answer: str | None, changed: bool, mine: str) -> list[str] | None:
    if asked == "caller_id" and f["number"] is None and (answer is None or changed):
        f["offered"] = False  # the caller said something else: the offer stands
    if asked == "number" and not changed and f["number"] is None:
        if w.has(*THIS_NUMBER) and mine:
            f["number"] = mine
        else:
            f["number_tries"] += 1
            return ["Sorry, I didn't get the number.", "Could you say it again, digit by digit, or key it in and press the hash key?"]
    return None


def _missing_field(f: dict, w: Words, asked: str | None, answer: str | None, changed: bool) -> list[str] | None:
    """The answer to "your name?", "your unit?" or "what about?" gave nothing: asked once more."""
    if asked == "name" and not f["name"] and not changed:
        f["name_tries"] += 1
        if f["name_tries"] < 2 and not refuses_name(w.raw):
            return ["Sorry, I didn't catch your name.", "Could you say it again?"]
        f["name"] = ""  # asked twice: the message goes without one ("A caller")
    if asked == "unit" and not f["unit"] and not changed:
        f["unit_tries"] += 1
        if answer == "no" or refuses_place(w.raw) or w.has("not a tenant", "don't live", "do not live", "doesn't apply", "not applicable", "none"):
            f["unit_tries"] = 2
        elif f["unit_tries"] < 2:
            return ["Sorry, I didn't get that.", f["unit_q"]]
    if asked == "topic" and not f["topic"] and not changed:
        f["topic_tries"] += 1
        if f["topic_tries"] < 2:
            return ["Sorry,", "what would you like the message to say?"]
    return None


def next_question(f: dict, mine: str) -> list[str]:
    """The question for the first field still missing, or the read-back: as a receptionist
    asks, who is calling, where, the number, then what it is about if that is not known yet."""
    if f["name"] is None:
        f["asked"] = "name"
        return [ASK_NAME]
    if f.get("unit_q") and not f["unit"] and f["unit_tries"] < 2:  # the business asks for a unit or address
        f["asked"] = "unit"
        return [f["unit_q"]]
    if f["number"] is None:
        if mine and not f["offered"]:
            f["offered"], f["asked"] = True, "caller_id"
            return [f"Shall we call you back on the number you're calling from, ending {speak_number(mine[-4:])}?"]
        f["asked"] = "number"
        return [ASK_NUMBER]
    if not f["topic"] and f["topic_tries"] < 2:  # asked twice: the message goes without it
        f["asked"] = "topic"
        return [ASK_TOPIC]
    f["asked"] = "confirm"
    return [_readback(f)]


def _readback(f: dict) -> str:
    who = (f" from {f['name']}" if f["name"] else "") + (f", {f['unit']}" if f.get("unit") else "")
    topic = flip(topic_text(f))
    # read back only a short subject (its first clauses), never a long number (nothing over 15 digits reaches the voice)
    clauses = re.split(r"(?<=[,;])\s+", topic)
    while len(clauses) > 1 and (len(" ".join(clauses).split()) > 14 or len(" ".join(clauses)) > 120):
        clauses.pop()
    topic = " ".join(" ".join(clauses).split()[:14]).rstrip(",; ")  # one long clause: its first words
    short = len(topic.split()) <= 14 and len(topic) <= 120 and all(len(r) <= MAX_DIGITS for r in number_runs(topic))
    about = f": {topic}" if topic and short else ""
    back = f"We'll call you back on {speak_number(f['number'])}" if f["number"] else "There's no number to call you back on"
    return f"So I have a message{who}{about}. {back}. Is that right?"


def addressed(name: str) -> str:
    """How the caller is thanked: "Sarah" for Sarah Jones, "Mrs Whitfield" for Mrs Eleanor Whitfield."""
    words = name.split()
    return f"{words[0]} {words[-1]}" if words[0] in TITLES.values() and len(words) > 1 else words[0]


def _ask_again(f: dict, which: str, ask_number: str) -> list[str]:
    f[which] = "" if which in ("topic", "unit") else None
    f["asked"] = which
    return [{"name": ASK_NAME, "number": ask_number, "topic": ASK_TOPIC, "unit": f.get("unit_q") or ""}[which]]


def _name_then_number(words: str) -> str | None:
    """ "dave price five five five six two three ...", "tomas reyes unit six": a name, then the
    number or the unit, in one breath."""
    return bare_name(words) if (phone_in(words)[0] and number_runs(words)) or unit_in(words) else None


def _recent_user(conv: Conversation, n: int) -> list[str]:
    """The caller's last ``n`` lines, oldest first."""
    return [str(m["content"]) for m in [m for m in conv.messages if m.get("role") == "user"][-n:]]
