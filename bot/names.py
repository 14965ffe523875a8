"""Callers' names, as they say them on the phone: "this is Will Hunt", "it's Bill, Bill
Foster", "Siobhan, that's S I O B H A N, Kelly", "Ann with an e", "Mary-Jane Watson-Smith",
"it's Dr. Patel", "Mark Davis here".

A name is read from the words after a cue ("my name is", "this is", "it's", "I'm"...) or,
when the bot just asked for it, from a bare answer. What follows the cue is read in comma
separated pieces, the way people give a name: a first try, a repeat with the surname, a
spelling, "with a c". Words that are also names (Will, Bill, Grace, Hill, Hunt) are taken
where a name stands; where the transcript is cased (speech recognition capitalises names),
a weak cue ("it's", "I'm") takes only capitalised words, so "it's come loose" is no name.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from bot.language import DIGIT_WORDS, MAX_TEXT, NOT_NAME
from bot.name_words import (
    COMPANY,
    GIVEN_WORDS,
    HARD,
    PLACE_WORDS,
    TITLES,
    Tok,
    cap,
    cased_text,
    namelike,
    read_name,
    segments,
    similar,
    tokens,
)
from bot.names_uncued import GREETING, piece_alone, uncued

_CUES = [  # (words, strong): a strong cue takes any name-like words; a weak one needs them to look like a name
    ("my name is", True), ("my name's", True), ("my names", True), ("name is", True), ("name's", True),
    ("the name is", True), ("the name's", True), ("this is", True), ("you're speaking to", True), ("you're speaking with", True),
    ("it's", False), ("its", False), ("it is", False), ("i am", False), ("i'm", False), ("im", False), ("call me", False),
    ("that's", False), ("thats", False), ("my name", True), ("put it under", True), ("put it down under", True),
    ("under the name of", True), ("under the name", True), ("put me down as", True), ("you can put", False),
    ("my full name", True), ("can you put", False), ("could you put", False),
    ("tell him", False), ("tell her", False), ("tell them", False), ("say that", False),  # "tell her Ruth Abernathy called"
    ("put her name", True), ("put his name", True), ("use her name", True), ("use his name", True),
]
_WHOSE = {"it's", "its", "that's", "thats", "it", "that", "she's", "he's", "they're", "the", "her", "his", "their"}
# who the caller is to the one the call is about: "I'm Biscuit's mum, Ivy Novak", "I'm his daughter, Jo Reyes"
_RELATION = {"mom", "mum", "mother", "dad", "father", "owner", "husband", "wife", "partner", "son", "daughter", "carer", "neighbour",
             "neighbor", "landlord", "landlady", "tenant", "sister", "brother", "friend", "boss", "nurse", "guardian", "parent",
             "worker", "caseworker", "cousin", "aunt", "uncle", "niece", "nephew", "grandson", "granddaughter", "flatmate",
             "housemate", "roommate", "lodger", "agent", "solicitor", "secretary", "assistant", "manager", "colleague"}
_KIND = {"support", "social", "care", "key", "live-in", "home", "personal", "case", "district", "community", "property"}  # "her support worker"
_HELLO = {"hi", "hiya", "hello", "hey", "evening", "morning", "afternoon"}
_NAME_THEN = {"i", "i'm", "im", "i've", "ive", "we", "we're", "actually", "and", "here", "calling", "from", "just"}
_AFTER_ONE = {",", "and", "from", "here", "speaking", "calling", "ringing", "phoning", "with", "in", "at"}  # "it's John, ..."
_SPAN = 40  # tokens after a cue read for a name: a name with its repeats and spelling fits, and each cue costs a bounded time
_TITLE_WORDS = {t.lower() for t in TITLES.values()}
_SIGNED = {"here", "speaking", "calling", "ringing", "phoning", "from"}
_CLAUSE_START = {",", ".", "?", "!", "yes", "yeah", "yep", "sure", "ok", "okay", "hi", "hello", "hey", "hiya", "oh", "well",
                 "so", "and", "no", "sorry", "right", "um", "uh", "er"}
_SURNAME_LEAD = {"last", "family", "second", "sur"}
_NOT_OWNER = {"her", "his", "its", "their", "our", "your"}  # "her name's Mittens": the pet's, not the caller's
_ANSWER_LEAD = {"yes", "yeah", "yep", "sure", "please", "ok", "okay", "well", "so", "hi", "hello", "hey", "it's", "its", "it", "is", "oh",
                "right", "that's", "thats", "sorry", "no", "nope", "actually", "wait", "me", "and", "er", "um"}
_ANSWER_TAIL = {"here", "speaking", "calling", "ringing", "phoning", "and", "from", "in", "at", "thanks", "thank", "please", "with",
                "unit", "apartment", "apt", "flat", "suite", "room"}  # "tomas reyes unit six"
_REFUSE = re.compile(r"\b(?:rather not|prefer not|don't want to|do not want to|won't|not giving|not going to give|no name|"
                     r"anonymous|not telling|none of your)\b", re.I)

def _finish(words: list[str]) -> str | None:
    """At most four words; a name said again after a word of it ("Mr Okafor Daniel Okafor") is the
    name as said the second time; a word said twice in a row once ("thomas reilly reilly")."""
    words = [w for i, w in enumerate(words) if not i or w.lower() != words[i - 1].lower()]
    low = [w.lower() for w in words]
    if any(w in COMPANY for w in low[1:]):
        return None  # "it's Marshall Roofing here": a company
    parts = {p for w in low if "-" in w for p in w.split("-")}
    while len(words) > 2 and low[-1] in parts:  # "Hughes-Whitfield, Hughes, hyphen, Whitfield": its parts said again
        words, low = words[:-1], low[:-1]
    for i, w in enumerate(low):
        if w not in _TITLE_WORDS and w in low[i + 1:] and len(words) - i - 1 >= 2:
            words = words[i + 1:]
            break
    return " ".join(words[:4]) if words else None


def _cue_at(toks: list[Tok], i: int, cased: bool, asked: bool = False) -> tuple[int, bool] | None:
    """The cue starting at token ``i``: (its length, strong); "from" after "message" ("a
    message for the manager from linda price") is a weak one."""
    if toks[i].low == "from" and any(t.low in ("message", "messages") for t in toks[max(0, i - 6):i]):
        return 1, False
    if (toks[i].low in ("put", "write") and i + 1 < len(toks) and toks[i + 1].low.rstrip(".") in TITLES
            and not {t.low for t in toks[i + 2:i + 5]} & {"on", "through", "in", "to", "onto"}):
        return 1, True  # "just put Mr Lowe" (not "can you put Dr Patel on?")
    for cue, strong in _CUES:
        parts = cue.split()
        if [t.low for t in toks[i:i + len(parts)]] == parts:
            before = toks[i - 1].low if i else ""
            if parts[0] in ("name", "name's") and (before in _NOT_OWNER or before.endswith("'s") or before in _SURNAME_LEAD):
                return None  # "her name's Mittens" is the pet's; "my last name is Nowak" is read as a surname
            after = toks[i + len(parts)] if i + len(parts) < len(toks) else None
            named = cased and after is not None and after.orig[:1].isupper() and after.low not in TITLES  # "...husband its Peter Quayle"
            rest = toks[i + len(parts):]
            two = len(rest) >= 2 and all(namelike(t, first=k == 0, nxt="", cased=cased, strict=False) for k, t in enumerate(rest[:2]))
            if (parts[0] in ("its", "that's", "thats") and before and before not in _CLAUSE_START and not named
                    and not (parts[0] == "its" and two and asked)):
                # "off its hinge", "a tooth that's darker": a word of the sentence, not a cue (but after "your name?",
                # "its not urgent its steve barker" gives one)
                return None
            return len(parts), strong
    return None


def name_in(text: str, *, asked: bool = False) -> str | None:
    """The caller's name in ``text``, after a cue or (``asked``: the bot just asked for it) as
    a bare answer; placeholders ("yes", "the caller") are never a name. A strong cue wins
    over a weak one; among equals, the last (a caller who corrects themselves)."""
    if asked:  # "May I have your name?" - "his name's Eamon Fitzgerald, it's for my dad": the person to call back
        their = _THEIR_NAME.search(text)
        if their and their.start() and (own := bare_name(text[:their.start()])):
            return own  # "Margaret Dunn. His name's Peter Dunn.": the caller's own name, said first
        text = _THEIR_NAME.sub("name is ", text)
    toks = tokens(text)
    cased = cased_text(toks)
    best: tuple[bool, list[str]] | None = None
    i = 0
    while i < len(toks):
        cue = _cue_at(toks, i, cased, asked)
        if cue is None:
            i += 1
            continue
        n, strong = cue
        name, after = _after_cue(toks[i + n:i + n + _SPAN], cased=cased, strict=not strong)
        plain = [w for w in name if w not in TITLES.values()]
        spelt = re.search(r"\bwith an? [a-z]\b", text[:MAX_TEXT], re.I) is not None  # "it's marc with a c": a name only if asked
        capitals = cased and bool(plain) and all(w[:1].isupper() for w in plain)
        # "hiya its maureen clegg", "its liam connolly actually...": an opening, not "yeah its radiator valve"
        opening = (all(t.low in GREETING or t.low in {",", "."} for t in toks[:i]) and len(plain) >= 2
                   and (any(t.low in _HELLO for t in toks[:i]) or bool(after and after[0] in _NAME_THEN)))
        if toks[i].low == "its" and not asked and not (after and after[0] in _SIGNED) and not capitals and not opening:
            i += n  # "its pitch black in here": the misspelt "it's" names only when asked, signed ("its john here") or in capitals
            continue
        trusted = strong or asked or len(plain) >= 2 or name[:1] != plain[:1] or (not spelt and (not after or after[0] in _AFTER_ONE))
        if toks[i].low in ("that's", "thats") and (len(plain) < 2 or (best and all(
                any(w.lower() == b.lower() for b in best[1]) for w in plain))):
            trusted = False  # "Ines Van Dijk, that's V A N, D I J K": the name spelled, not another
        held = [w for w in best[1] if w not in TITLES.values()] if best else []
        lone = not strong and len(plain) == 1 and len(held) >= 2 and not similar(plain[0], held[0])
        if len(plain) == 1 and len(held) >= 2 and similar(plain[0], held[0]):
            name = [plain[0], *held[1:]]  # "it's Mark Jones, sorry, it's Marc with a c": the first name corrected
        if plain and trusted and (best is None or strong >= best[0]) and not lone:
            best = (strong, name)  # a lone word after a weak cue ("call me Monday") does not undo a full name
        i += n if plain else 1  # no name after "you can put": "put it under Raymond Castellanos" may start inside it
    if best and cased and len(best[1]) == 1 and (whole := piece_alone(toks)) and similar(whole[0], best[1][0]):
        best = (best[0], whole)  # "It's Mark. Mark Dubois.": the name said again in full
    if best and len(best[1]) == 1 and (again := _said_again(toks, best[1][0], cased)):
        best = (best[0], again)  # "I'm his carer Karen from the home care agency, Karen Wells"
    words = _surname(best[1] if best else uncued(toks, cased), toks, cased)
    if not words and asked:
        return _first_after(text, bare_name(text), asked=True)
    return _first_after(text, _finish(words), asked=asked)


_THEIR_NAME = re.compile(r"\b(?:(?:put|use|under)\s+)?(?:his|her|their)\s+name(?:'s|\s+is|\s+down)?(?:\s+as)?\s*:?", re.I)
_FIRST_SAID = re.compile(r"\b(?:first|christian|given) name(?:'s|s| is| was)?[\s,]+([^\W\d_][\w'-]*)", re.I)


def _first_after(text: str, name: str | None, *, asked: bool) -> str | None:
    """The surname said first, then the first name ("its nakamura um first name is yumi",
    "Okonkwo, first name Chidi"): the name in the usual order."""
    said = _FIRST_SAID.search(text[:MAX_TEXT])
    if not said or (name and len(name.split()) > 1 and not name.lower().endswith(said.group(1).lower())):
        return name
    first = said.group(1)
    if first.lower() in HARD:
        return name
    before = name_in(text[:said.start()], asked=asked) or bare_name(text[:said.start()]) if said.start() else None
    if not before or len(before.split()) != 1 or before.lower() == first.lower():
        return name
    return f"{first.capitalize() if first.islower() else first} {before}"


def _after_cue(toks: list[Tok], *, cased: bool, strict: bool) -> tuple[list[str], list[str]]:
    """The name read after a cue, past who the caller is ("I'm Biscuit's mom, um, Ivy, Ivy Novak")."""
    segs = segments(toks)
    name, after = read_name(segs, cased=cased, strict=strict)
    k = next((k for k in range(1, 4) if k < len(toks) and _relation(toks[:k])), 0)
    if not name and k and segs and len(segs[0]) > k:  # "I'm his carer Karen from the agency": the name past who they are
        name, after = read_name([segs[0][k:], *segs[1:]], cased=cased, strict=strict)
    if not name and len(segs) > 1 and (_relation(segs[0]) or any(t.low == "name" for t in segs[0])):
        rest = segs[1:]  # "put it under my mom's name, it's her account, Linda Hayes": the name past whose it is
        while len(rest) > 1 and rest[0][0].low in _WHOSE:
            rest = rest[1:]
        name, after = read_name(rest, cased=cased, strict=strict)
    return name, after


def _said_again(toks: list[Tok], first: str, cased: bool) -> list[str]:
    """The first name said again later with a surname, at the end of a sentence ("... agency, karen wells")."""
    low = first.lower()
    for j in range(len(toks) - 2, 0, -1):
        end = toks[j + 2].low if j + 2 < len(toks) else "."
        if (toks[j].low == low and low not in GIVEN_WORDS and any(t.low == low for t in toks[:j])
                and (end in ".?!," or end in _ANSWER_TAIL) and toks[j + 1].low not in NOT_NAME | PLACE_WORDS
                and namelike(toks[j + 1], first=False, nxt="", cased=cased, strict=False)):  # not "the will, will reading"
            return [cap(toks[j]), cap(toks[j + 1])]
    return []


def _relation(seg: list[Tok]) -> bool:
    """ "Biscuit's mom", "his daughter", "the landlord": who the caller is (not "ringing for my wife")."""
    return len(seg) <= 3 and seg[-1].low in _RELATION and all(
        t.low in ("his", "her", "their", "the", "a", "an") or t.low.endswith("'s") or (k and t.low in _KIND)
        for k, t in enumerate(seg[:-1]))


def _surname(name: list[str], toks: list[Tok], cased: bool) -> list[str]:
    """ "my first name is John, surname Smith": the surname said on its own joins the name (or,
    "no, my surname is Nowak", is the name to merge with the one taken)."""
    for i, t in enumerate(toks[:-1]):
        k = i + 1
        if t.low in ("surname", "lastname", "surname's", "lastname's") or (
                t.low in ("name", "name's") and i and toks[i - 1].low in _SURNAME_LEAD):
            k += 1 if toks[k].low in ("is", "'s") else 0
            if k < len(toks) and namelike(toks[k], first=False, nxt="", cased=cased, strict=False):
                plain = [w for w in name if w not in TITLES.values()]
                if plain and plain[-1].lower() == toks[k].low:
                    return name  # "the surname's Whelan, W H E L A N": the name read is that surname
                return [*name[:-1], cap(toks[k])] if len(plain) >= 2 else [*name, cap(toks[k])]
    return name


def bare_name(text: str, *, whole: bool = False) -> str | None:
    """The answer to "your name?" with no cue: "john smith", "yeah it's ann lee, thanks" ->
    the name; None when the words are not a name ("yes", "my sink is clogged"). ``whole``:
    only a name alone (where another answer was asked for)."""
    toks = tokens(text)
    cased = cased_text(toks)  # before the lead is dropped: "is Maria home" is cased, "maria" then at no sentence start
    while toks and (toks[0].low in _ANSWER_LEAD or toks[0].low in ",?."):  # "Sure. Teodora Lindqvist."
        toks = toks[1:]
    if not toks:
        return None
    name, after = read_name(segments(toks), cased=cased, strict=False)
    if not name:
        return None
    later = [t.low for t in toks[next((k for k, t in enumerate(toks) if t.low in ".?!;:"), len(toks)):] if t.low not in ".?!;:,"]
    extra = [w for w in after + later if w not in (",", "thanks", "thank", "you", "please", "here", "speaking")]
    if (whole and extra) or (after and after[0] not in _ANSWER_TAIL | {","} and not _digitish(after[0])):
        return None  # more words of a sentence ("sink clogged" is no name anyway); where another answer was asked for, a name alone
    return _finish(name)


def _digitish(word: str) -> bool:
    """A number said after the name ("Tom, 555...", "ann lee, oh seven seven"); "for" and "to" are words here."""
    return word.isdigit() or (word in DIGIT_WORDS and word not in ("for", "to", "too", "o")) or word in ("double", "triple", "treble")


def refuses_name(text: str) -> bool:
    """ "I'd rather not give my name", "I don't want to say"."""
    return _REFUSE.search(text) is not None


_SURNAME_SAID = re.compile(r"\b(?:surname|last name|family name|second name)\b", re.I)


def merge_name(old: str | None, new: str, text: str = "") -> str:
    """A one-word correction of a longer name replaces the word it resembles ("Mark Jones",
    then "Marc with a c" -> "Marc Jones"); a surname said as one joins a first name
    ("Declan", then "the surname's Whelan"); anything else replaces the name."""
    if old and len(new.split()) == 1 and len(old.split()) == 1 and new.lower() != old.lower() and _SURNAME_SAID.search(text):
        return f"{old} {new}"
    if old and len(new.split()) > 1 and f" {new.lower()}" in f" {old.lower()}" and len(old.split()) > len(new.split()):
        return old  # "Rosa De la Cruz", then "De la Cruz, D E ...": the surname said again
    if not old or len(new.split()) != 1 or len(old.split()) < 2:
        return new
    words = old.split()
    plain = [i for i, w in enumerate(words) if w not in TITLES.values()]
    if plain and re.search(r"\b(?:first|christian|given) name", text, re.I):
        words[plain[0]] = new  # "the first name's spelt S I O B H A N": that word, whatever it was
        return " ".join(words)
    scores = [SequenceMatcher(None, w.lower(), new.lower()).ratio() for w in words]
    if new.lower() in (w.lower() for w in words):
        return old  # "Yusuf" again after "Yusuf Ali"
    best = max(range(len(words)), key=lambda i: scores[i])
    kept = [i for i, w in enumerate(words) if re.search(rf"\b{re.escape(w)}\b", text, re.I)]
    if scores[best] < 0.6 and kept and len(kept) < len(words):
        # nothing alike: "it's Krzysztof, K R Z Y S Z T O F. Nowicki is fine": the word not said again changes
        best = max((i for i in range(len(words)) if i not in kept), key=lambda i: scores[i])
    elif scores[best] < 0.6:
        return new
    words[best] = new
    return " ".join(words)


_INTRO = re.compile(r"^(?:\s*(?:hi|hiya|hello|hey|good (?:morning|afternoon|evening)|morning|afternoon|evening|yes|yeah|oh|um|uh|"
                    r"there)\b[\s,.!]*)*(?:this is|it's|its|it is|my name is|my name's|i'm|i am)\s+", re.I)
_INTRO_TAIL = re.compile(r"^(?:\s*,?\s*(?:here|speaking|calling|ringing))?(?:\s*,?\s+(?:from|at|with|in)\s+(?:the\s+)?"
                         r"[\w'&-]+(?:\s+(?!(?:i|i'm|im|we|we're|my|our|and|about|calling|ringing|the|your|a|an|this|just)\b)"
                         r"[\w'&-]+){0,4}?)?"
                         r"(?=\s*[.,;!?]|\s+(?:i|i'm|im|we|we're|my|our|and|calling|ringing|about|the|your|a|an|this|just)\b)"
                         r"\s*[.,;!?]*\s*", re.I)


def without_intro(text: str) -> str:
    """What the caller says after introducing themselves ("Hi, this is Dana Whitfield from
    Keystone Insurance. I'm handling a claim..." -> "I'm handling a claim..."): the name and where
    they call from say nothing of what they want. The text as it was when no name opens it or
    nothing would be left."""
    intro = _INTRO.match(text[:MAX_TEXT])
    name = name_in(text[:MAX_TEXT]) if intro else None
    if not intro or not name:
        return text
    rest = text[intro.end():]
    words = name.split()
    # the name as said (a title or "reverend" before it allowed): its last word, then where they call from
    said = re.match(rf"(?:[\w.'-]+\s+){{0,{len(words)}}}?{re.escape(words[-1])}\b", rest, re.I)
    if not said:
        return text
    tail = _INTRO_TAIL.match(rest[said.end():])
    if not tail:
        return text
    left = re.sub(r"^(?:and|so)\b[\s,]*", "", rest[said.end() + tail.end():].strip(), flags=re.I)
    return left if len(left.split()) >= 3 else text

