"""The fields of a message in one utterance of the caller's: a name, a callback number
(and a correction of the one taken: "no, it ends 5309", "did I say 3312? it's 3321"), the
unit or address where the business asks for one, what it is about, and whether it is urgent.
Read into the form's plain data (``bot.message_form``)."""

from __future__ import annotations

import re

from bot.language import ASSENT, DIGIT_WORDS, Words, is_yes, last_answer
from bot.message_topic import DTMF, RECIPIENT, TOPIC_MAX, about_of
from bot.name_words import TITLES, similar, spelt_plainly
from bot.names import bare_name, merge_name, name_in, refuses_name
from bot.names_uncued import signed_off
from bot.phone_numbers import digits_of, number_runs, phone_in
from bot.places import address_in, refuses_place, spoken_postcode
from bot.understanding.answers import NOT_SO

URGENT = ("urgent", "asap", "as soon as possible", "emergency", "right away", "straight away", "can't wait")
NOT_URGENT = ("not urgent", "isn't urgent", "nothing urgent", "not an emergency", "isn't an emergency", "no emergency", "no rush", "can wait",
              "is it urgent", "is that urgent", "is this urgent", "if it's urgent", "unless it's urgent", "not that urgent",
              *NOT_SO)  # and a no said after the story ("I don't think it's an emergency"), as the emergency question reads it
ENDS = ("ends", "ending", "end in", "end with", "at the end", "last digit", "last two", "last three", "last four",
        "last five", "last part", "last bit", "finishes")
STARTS = ("starts", "starting", "begins", "beginning", "first digit", "first three", "area code")


def gives_details(raw: str, unit: bool) -> bool:
    """The caller's words give a field of a message (a phone number, a name, an address where
    the business asks for one): said instead of an answer, they mean "take a message"."""
    if DTMF.fullmatch(raw):
        return False
    bare = bare_name(raw, whole=True) or spelt_name(raw)
    return (bool(phone_in(raw)[0]) or bool(name_in(raw)) or (bare is not None and len(bare.split()) >= 2)
            or (unit and bool(address_in(raw, asked=False))))


def spelt_name(raw: str) -> str | None:
    """A full name and its spelling, and nothing else ("Kirsty MacLeod. M-A-C, capital L, E-O-D.")."""
    name = name_in(raw, asked=True)
    if not name or len(name.split()) < 2:
        return None
    rest = {w for w in Words(spelt_plainly(raw)).words if len(w) > 1} - {w.lower() for w in name.split()} - _SPELL_WORDS
    return name if not rest else None


_SPELL_WORDS = {"spelt", "spelled", "spelling", "that's", "it's", "its", "is", "as", "in", "and", "with", "an", "apostrophe", "hyphen",
                "dash", "space", "then", "capital", "double"}


def details_only(raw: str, unit: bool) -> bool:
    """The words give a field of a message and nothing else ("Dawn Marsh, in unit 2A"): no
    problem of their own to be asked about ("it's Bob Stone, he collapsed" has one)."""
    if not gives_details(raw, unit):
        return False
    rest = raw
    for said in (name_in(raw, asked=True) or "", *address_in(raw, asked=True).split(", ")):
        for word in said.split():
            rest = re.sub(rf"\b{re.escape(word)}\b", " ", rest, flags=re.I)
    rest = re.sub(r"\b\w*\d\w*\b", " ", rest)  # numbers, "2A"
    rest = " ".join(x for x in rest.split() if x.lower().strip(",.") not in DIGIT_WORDS)  # "unit three oh four"
    return not (Words(rest).content() - _UNIT_WORDS)


_UNIT_WORDS = {"unit", "apartment", "apt", "flat", "number", "name", "floor", "suite", "room", "house"}
_ASIDE = re.compile(r"\?\s*$|^(?:(?:oh|um|uh|and|but|sorry|before (?:that|i forget)|actually|wait|quick question)[\s,]+)*"
                    r"(?:what|when|where|how|do you|are you|is there|is it|can i|could you tell|could i ask)\b", re.I)


_BEFORE = re.compile(r"\b(?:before (?:that|i forget|we start)|first|quick question|by the way|one thing)\b", re.I)


def more_topic(topic: str, raw: str) -> str:
    """What it is about, with what the caller added when they gave their details instead of an
    answer ("no, it's just the hallway light, my name's Tom")."""
    extra = about_of(raw, name=name_in(raw, asked=True))
    for part in address_in(raw, asked=True).split(", "):  # the address is a field of its own
        extra = re.sub(re.escape(part), " ", extra, flags=re.I) if part else extra
    extra = extra.strip(" ,.;")
    if len(Words(extra).content()) < 2 or extra.lower() in topic.lower():
        return topic
    return f"{topic}; {extra}" if topic else extra


_ASKING_FOR = {"speak", "talk", "someone", "somebody", "manager", "need", "want", "like", "put", "through", "get", "hold", "reach"}


def tells_more(about: str) -> bool:
    """A call for a person that tells what it is about ("I'm handling a claim for the hail damage
    to the carport, I need to speak to the manager"), not only who it is for."""
    return len(Words(about).content() - _ASKING_FOR) >= 4


def after_offer(topic: str, raw: str) -> str:
    """What a message asked for after an answer is about: a request of its own comes before what
    was answered ("how much is a Sunday call-out?" ... "can someone ring me Monday about my
    shower"); else what was told before, with what the caller added."""
    new = more_topic("", raw)
    if topic and new and new.lower() not in topic.lower():
        return f"{new}; {topic}"
    return more_topic(topic, raw)


def is_aside(raw: str, f: dict) -> bool:
    """A question of the caller's own, asked where the form asked something else ("before
    that, what time do you open tomorrow?"): not an answer with a field in it."""
    if DTMF.fullmatch(raw) or not _ASIDE.search(raw.strip()) or number_runs(raw) or f.get("asked") == "confirm":
        return False
    if f.get("asked") == "topic" and not _BEFORE.search(raw):
        return False  # asked what the message is about, "when can someone fix my heating?" is the message
    return not name_in(raw)


_DIGIT = (r"(?:\d+|zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple|treble|ten|eleven|twelve|"
          r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundred)")
_WRONG_DIGITS = re.compile(rf"[\s,]*\b(?:not|instead of|rather than)\s+{_DIGIT}(?:[\s,-]+{_DIGIT})*[\s.!?]*$", re.I)


_FULL_POSTCODE = re.compile(r"\b[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2}\b", re.I)
_POSTCODE = re.compile(r"\b[a-z]{1,2}\d[a-z\d]?(?:\s*\d[a-z]{2})?\b", re.I)  # a UK postcode, or its first half


def absorb(f: dict, raw: str, w: Words, *, asked: str | None) -> str:
    """Take every field the words give; returns "long" when a number had too many digits."""
    if w.has(*URGENT) and not w.has(*NOT_URGENT):
        f["urgent"] = True
    heard = _WRONG_DIGITS.sub("", raw)  # "it ends 7712, not 7710": the digits after "not" are the wrong ones
    heard = spoken_postcode(_POSTCODE.sub(" ", heard))[1]  # "the postcode's LS27 9JP": no digits of a phone number
    number, problem = phone_in(heard)
    if problem == "long":
        return "long"
    runs = number_runs(heard)
    number, corrected = _number_of(f, w, number, runs, asked)
    if number:
        f["number"] = number
    unit = address_in(raw, asked=asked == "unit")  # taken when said, asked for only where the business asks
    old_code = _FULL_POSTCODE.search(f["unit"] or "")
    if unit and old_code and asked in ("confirm", "which") and _FULL_POSTCODE.fullmatch(unit.strip()):
        f["unit"] = f["unit"].replace(old_code.group(0), unit.strip())  # "no, the postcode's LS27 9JP": that part of it
    elif unit and (asked == "unit" or len(unit) >= len(f["unit"] or "")):
        f["unit"] = unit
    name, bare = _name_of(f, raw, runs, number, asked)
    if name:
        f["name"] = merge_name(f["name"], name, raw)
        f["one_word"] = len(f["name"].split()) == 1
    if asked == "start":
        return ""
    about = "" if corrected or (bare and name) else about_of(raw, name=name)
    if about and unit:  # "it's 61 Harehills Lane, LS8 4DT": the address is a field of its own, not what it is about
        rest = about
        for part in unit.split(", "):
            rest = re.sub(re.escape(part), " ", rest, flags=re.I)
        about = about if len(Words(rest).content()) >= 2 else ""
    _topic_of(f, raw, w, about, asked, name=name, runs=runs)
    return ""


def _number_of(f: dict, w: Words, number: str, runs: list[str], asked: str | None) -> tuple[str, bool]:
    """The number heard, with a part of one read as a correction of the number taken
    ("no, it ends 5309"). (The number, and whether it corrected the one before.)"""
    old = digits_of(f["number"] or "")
    said = [r for r in runs[:-1] if len(r) >= 3 and r in old]
    if old and said and len(said[-1]) == len(runs[-1]) and not number:  # "did I say 3312? it's 3321"
        i = old.rfind(said[-1])
        return old[:i] + runs[-1] + old[i + len(runs[-1]):], True
    cued = w.has(*ENDS, *STARTS) or (w.has("number", "digits", "digit") and not said_this_number(w.raw))  # not "on this number"
    # "yes, and tell them the gate code is 1973": an addition, not the number put right
    if old and not number and runs and (cued or (asked in ("confirm", "which") and answer_of(w) != "yes")):
        part = runs[-1]
        if (3 if not cued and asked == "confirm" else 1) <= len(part) < len(old):  # "she's six" corrects no number
            number = part + old[len(part):] if w.has(*STARTS) and not w.has(*ENDS) else old[: len(old) - len(part)] + part
    elif old and number and len(number) < len(old) and asked in ("confirm", "which") and not w.has(*STARTS):
        number = old[: len(old) - len(number)] + number  # "no, 867 5309": the end of it
    corrected = bool(number) and bool(old) and (w.has(*ENDS, *STARTS) or len(runs[-1]) < 7)
    return number, corrected


def _fuller(held: str, bare: str) -> bool:
    """The name held was a title and a surname, and the bare name is the same surname with a given name."""
    words = held.split()
    if len(words) < 2 or words[0].lower().rstrip(".") not in {t.lower() for t in TITLES.values()}:
        return False
    surname, full = re.sub(r"[^a-z]", "", " ".join(words[1:]).lower()), re.sub(r"[^a-z]", "", bare.lower())
    return full.endswith(surname) and len(full) > len(surname)


def _name_of(f: dict, raw: str, runs: list[str], number: str, asked: str | None) -> tuple[str | None, str | None]:
    """The name heard: said as one ("my name is ..."), or, out of order, a name alone.
    (The name, and the bare name when it came alone.)"""
    one_word, f["one_word"] = f.get("one_word"), False
    spelling = re.search(r"\bwith (?:a|an|one|a single|two|double) [a-z]\b|\bspel", raw, re.I) is not None
    # "no, it's Kirsten", "no sorry its mcalister with one l" (a lone "one" is no number)
    correcting = asked in ("confirm", "which") and not any(len(r) >= 3 for r in runs) and answer_of(Words(raw)) != "yes"
    name = name_in(raw, asked=asked == "name" or correcting or spelling)
    if (name and correcting and not spelling and f["name"] and len(name.split()) == 1 and not re.search(r"\bname", raw, re.I)
            and not any(similar(name, old) for old in f["name"].split())):
        name = None  # "no, it's veneers I'm after, not whitening": what it is about put right, not the name
    if not name and not f["name"] and asked in ("start", "number", "caller_id", "unit"):
        name = signed_off(raw, leading=asked != "start")  # "yeah go on then its raj sandhu postcode ls17 8hx": a message is under way
    bare = None
    if not name and asked in ("topic", "number", "caller_id", "unit"):
        bare = bare_name(raw, whole=True)  # out of order: only a name alone, and not one bare word
        if bare and one_word and f["name"] and len(bare.split()) == 1 and not number:
            name = f"{f['name']} {bare}"  # "sofia" ... "garcia"
        elif bare and len(bare.split()) >= 2 and (not f["name"] or bare.split()[0].lower() == f["name"].split()[0].lower()
                                                  or _fuller(f["name"], bare) or len(f["name"].split()) == 1):
            name = bare  # "paul" ... "paul nguyen"; "Mrs Quintero Baptiste" ... "Dolores Quintero-Baptiste"; "More" ... "Chloe Fitzgerald"
        elif bare and f["name"] == "" and f["name_tries"] >= 2 and not number:
            name = bare  # asked twice and not caught ("um"): a name said alone later is it ("harriet")
        elif bare and len(bare.split()) >= 2:
            bare = None
    return name, bare


# "it's about my rent", not "he's about fifteen pounds", "about an hour ago"
_ABOUT_CUE = re.compile(r"\b(?:about|regarding|concerning)\b(?!\s+(?:\d|an? (?:hour|week|day|month|year|minute|half|couple|few|"
                        r"dozen|bit|inch|foot|mile|quarter|second|fortnight)|half|one|two|three|four|five|six|seven|eight|nine|"
                        r"ten|eleven|twelve|hundred|[a-z]+teen\b|[a-z]+ty\b|the same|to\b))", re.I)


def _topic_of(f: dict, raw: str, w: Words, about: str, asked: str | None, *, name: str | None, runs: list[str]) -> None:
    cue = _ABOUT_CUE.search(raw) if not (asked == "confirm" and answer_of(w) == "yes") else None  # "yes, and ..." adds
    # said at the caller-ID offer, with or without its yes: "it's the lift", "yeah it's just to say I'm running late"
    told = (asked == "caller_id" and not f["topic"] and not w.has(*THIS_NUMBER) and not NOT_THIS.search(raw) and not runs
            and len(Words(about).content() - _PHONE_TALK) >= 2)
    if (about and cue and f["topic"] and asked in ("name", "unit", "number", "caller_id")
            and asked != "topic" and about.lower() not in f["topic"].lower()):
        # "call me about the dog" after the dog's poisoning was told: what it is about grows, it is not replaced
        if len(Words(about).content() - Words(f["topic"]).content() - _PHONE_TALK) >= 3:
            f["topic"] = f"{f['topic']}; {about}"[:TOPIC_MAX]
    elif about and (asked == "topic" or not f["topic"] or cue) and (cue or told or asked not in ("confirm", "caller_id", "which")):
        topic_into(f, about)
    elif asked == "topic" and not about and not name and not runs and w.content() and last_answer(w) is None and not is_yes(w):
        f["topic"] = raw.strip()[:TOPIC_MAX]  # one word is enough when it was the answer to "what about?"
    elif (about and f["topic"] and asked in ("name", "unit", "number", "caller_id") and not name and not runs
          and ((answer_of(w) is None and not is_yes(w)) or len(Words(about).content() - _PHONE_TALK) >= 5)  # "ok, and tell them..."
          and not w.has(*THIS_NUMBER)  # "that's fine, use this number"
          and len(Words(about).content()) >= 3 and about.lower() not in f["topic"].lower()
          and not refuses_name(raw) and not refuses_place(raw)):
        f["topic"] = f"{f['topic']}; {about}"[:TOPIC_MAX]  # more of it, told where something else was asked



def topic_into(f: dict, text: str) -> bool:
    """Set what it is about from ``text`` (or, for "for the leasing office", who it is for)."""
    about = about_of(text) if text else ""
    if about and RECIPIENT.match(about):
        f["to"] = about.rstrip(" ,.")
        return False
    if about:
        f["topic"] = about
    return bool(about)


_PHONE_TALK = {"mobile", "cell", "phone", "number", "landline", "fine", "work", "home", "house", "one", "good", "best", "use",
               "call", "ring", "reach", "ok", "okay", "yes", "yeah", "sure", "that's", "thats", "correct", "right", "go", "ahead", "same",
               "from", "calling", "this", "mine", "wife's", "husband's", "better", "instead", "rather", "other"}
NO_CALLBACK = re.compile(
    r"\b(?:no need to (?:call|ring|phone)|(?:don'?t|do not|doesn'?t|does not) need (?:a|to) (?:call|ring)|(?:don'?t|do not) (?:call|ring) me"
    r"|no call ?back|rather not (?:give|say|leave)|prefer not to (?:give|say|leave)|(?:won'?t|not) (?:give|giving|leave|leaving) (?:you )?"
    r"(?:a|my|the) number|i'll (?:call|ring|phone) (?:you|back|again)|no number)\b", re.I)
NOT_THIS = re.compile(r"\b(?:don'?t|do not|not|never)\s+(?:(?!(?:so|but|and|just|please|then)\b)\w+\s+){0,4}?"
                      r"(?:this|that|the same)\s+(?:one|number|phone|line)\b"
                       r"|\b(?:different|another|other)\s+number\b", re.I)
THIS_NUMBER = ("this number", "same number", "calling from", "this one", "this phone")
_SAID_THIS = re.compile(r"\b(?:this|same|the same) (?:number|phone number|phone|line)\b"
                        r"|\b(?:number|phone|line|one) (?:i'm|i am|im|we're|we are) (?:calling|ringing|phoning|on)(?: (?:from|on|with))?\b"
                        r"|\b(?:call|ring|phone|reach|get|text) (?:me|us|him|her)(?: back)? (?:on|at) (?:this|the same)(?: one)?\b"
                        r"|\bthis one(?:'s| is) (?:fine|good|ok|okay|best)\b", re.I)


def said_this_number(raw: str) -> bool:
    """Unasked, the caller said to use the phone they are calling from ("the number I'm ringing
    from is fine", "same number"), not that another is better ("not this number")."""
    return bool(_SAID_THIS.search(raw)) and not NOT_THIS.search(raw)


_ALSO_YES = ("that's it", "that's fine", "that's all fine", "that's all correct", "that's the one", "spot on", "perfect",
             "lovely", "sounds good", "all good", "that works", "that'll do", "that will do", "fine", *ASSENT,
             "that's my number", "that's the number", "that's me", "this one's fine", "this one is fine")


def answer_of(w: Words) -> str | None:
    """The caller's final yes or no, with the ways people say yes to a read-back ("that's it",
    "spot on", "that's fine"); None if neither."""
    said = last_answer(w)
    if said is None and w.has(*_ALSO_YES) and not w.has("not", "don't", "isn't", "wrong"):
        return "yes"
    return said


def which_part(w: Words, f: dict) -> str | None:
    """Which part the caller says is wrong."""
    if w.has("number", "phone", "digits"):
        return "number"
    if f.get("unit_q") and w.has("unit", "apartment", "flat", "address", "suite", "postcode", "post code", "zip", "street", "road"):
        return "unit"
    if w.has("name", "spelling", "spelt", "spelled"):
        return "name"
    if w.has("about", "message", "subject", "reason"):
        return "topic"
    said_not = re.findall(r"\bnot (?:the |a |an |my |about )?([a-z']{3,})", w.text)
    if any(Words(x).content() & Words(f.get("topic") or "").content() for x in said_not):
        return "topic"  # "it's veneers I'm after, not whitening": a word of what it is about taken back
    return None
