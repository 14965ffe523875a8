"""Where the caller is, when the business asks for it: a flat or unit ("I'm in unit four c",
"apartment 12B"), a street address ("40 Cardigan Road", "flat 2, 9 Headingley Lane") and a
postcode or ZIP code ("LS6 3HP", "LS16 5HX", "94110"), in any utterance; given bare, as the
answer to the business's question, also a street without a number ("the farm on Moor Lane").
"""

from __future__ import annotations

import re

from bot.language import DIGIT_WORDS, MAX_TEXT, TEENS, TENS, unit_in

_STREET = (r"road|rd|street|st|avenue|ave|lane|ln|drive|dr|way|place|pl|court|ct|close|crescent|terrace|square|gardens|"
           r"grove|boulevard|blvd|hill|row|walk|mews|view|rise|green|parade|park|vale|wharf|yard|circle|highway|hwy|"
           r"cottages|buildings|mansions|villas")
_BUILDING = r"farm|cottage|cottages|house|hall|lodge|barn|mill|manor|estate|village|vicarage|rectory|chapel|works|centre|center"
_POSTCODE = re.compile(r"\b([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})\b", re.I)
_ZIP = re.compile(r"\b(?:zip(?: code)?|postcode|post code)\s*(?:is\s+)?(\d{5})\b", re.I)
_NUMBERED = re.compile(rf"\b(\d{{1,4}}[a-z]?)\s+((?:[A-Za-z'][\w'-]*\s+){{0,3}}(?:{_STREET}))\b\.?", re.I)
_NAMED = re.compile(rf"\b(?:on|in|at|off)\s+((?:[A-Z][\w'-]*\s+){{1,3}}(?:{_STREET}))\b", re.I)
# a one-word street said after "I'm at" ("I'm at 18 Kingsway in Wakefield", "we live at 210 Broadway")
_AT_NUMBER = re.compile(r"(?i:\b(?:i'm at|im at|i am at|we're at|we are at|live at|living at|address is|it's at)\s+)"
                        r"(\d{1,4}[a-z]?)\s+([A-Z][a-z][\w'-]*)\b")
_TOWN = re.compile(r"^[\s,]+(?:in\s+)?([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)(?=\s*(?:,|$|[A-Z]{1,2}\d))")
_CORRECTED = re.compile(r"\b(?:no,? sorry|sorry,? no|no wait|no no|i mean|i meant|scratch that|correction)\b[\s,]*", re.I)
_NOT_PLACE = re.compile(r"\b(?:rather not|prefer not|don't want|not saying|no idea|don't know|not sure)\b", re.I)


def _title(words: str) -> str:
    return " ".join(w if w.isupper() or any(c.isdigit() for c in w) else w.capitalize() for w in words.split())


def address_in(text: str, *, asked: bool = False) -> str:
    """The unit, street address and postcode the caller gave, as one line ("Flat 2, 9
    Headingley Lane", "22 Kirkstall Road, LS3 1LJ", "Unit 4C"); "" when none."""
    text = text[:MAX_TEXT]
    last = next(reversed(list(_CORRECTED.finditer(text))), None)  # the last correction said
    if last and _address(text[:last.start()], asked) and (after := _address(text[last.end():], True)):
        return after  # "67 Town Street, Armley, no sorry, Bramley, 67 Town Street Bramley": what was said last
    return _address(text, asked)


# the UK's postcode areas (Royal Mail): what may begin a postcode said aloud
_AREAS = frozenset("""ab al b ba bb bd bh bl bn br bs bt ca cb cf ch cm co cr ct cv cw da dd de dg dh dl dn dt dy e ec eh en
    ex fk fy g gl gu gy hd hg hp hr hs hu hx ig im ip iv je ka kt kw ky l la ld le ll ln ls lu m me mk ml n ne ng nn np nr nw
    ol ox pa pe ph pl po pr rg rh rm s sa se sg sk sl sm sn so sp sr ss st sw sy ta td tf tn tq tr ts tw ub w wa wc wd wf wn wr
    ws wv yo ze""".split())
_WORD_AREAS = {"so", "me", "st", "ha", "le", "de", "ox", "ch", "al"}  # also everyday words
_SPOKEN_CODE = re.compile(r"[a-z]{1,2}\d[a-z\d]?\d[a-z]{2}")  # a whole UK postcode, its spaces gone


def spoken_postcode(text: str) -> tuple[str, str]:
    """A UK postcode said letter by letter and number by number ("l s twenty seven nine p d",
    "w f one three b q"): ("LS27 9PD", the text without it), or ("", text). Its last three
    characters are always a digit and two letters, so where it splits is known."""
    found = list(re.finditer(r"[a-z']+|\d+", text[:MAX_TEXT].lower()))
    toks = [m.group(0) for m in found]
    for i in range(len(toks)):
        area, j = "", i
        while j < len(toks) and len(toks[j]) <= 2 and toks[j].isalpha() and len(area) + len(toks[j]) <= 2:
            area, j = area + toks[j], j + 1
        cued = any(t in ("postcode", "code", "postal") for t in toks[max(0, i - 3):i])
        if area not in _AREAS or (toks[i] in _WORD_AREAS and not cued):
            continue  # "so eighteen a b", "ring me 12 p m": words, unless a postcode was announced
        body, k = "", j
        while k < len(toks) and len(body) < 6:
            t = toks[k]
            if t.isdigit() and len(t) <= 2:
                body += t
            elif t in DIGIT_WORDS and t not in ("to", "too", "for", "o"):
                body += DIGIT_WORDS[t]
            elif t in TEENS:
                body += TEENS[t]
            elif t in TENS:
                unit = toks[k + 1] if k + 1 < len(toks) else ""
                body += TENS[t] + (DIGIT_WORDS[unit] if unit in DIGIT_WORDS and unit not in ("oh", "o", "to", "too", "for") else "0")
                k += unit in DIGIT_WORDS and unit not in ("oh", "o", "to", "too", "for")
            elif len(t) <= 2 and t.isalpha() and body and any(c.isdigit() for c in body):
                body += t  # "ls nine seven dx": the last two letters as one word too
            else:
                break
            k += 1
            code = area + body
            if (_SPOKEN_CODE.fullmatch(code) and (k == len(toks) or len(toks[k]) > 1 or not toks[k].isalpha())
                    and code[-2:] not in ("am", "pm")):  # "12 p m" is a time
                start, end = found[i].start(), found[k - 1].end()
                return f"{code[:-3]} {code[-3:]}".upper(), (text[:start] + " " + text[end:]).strip()
    return "", text


def _address(text: str, asked: bool) -> str:
    parts: list[str] = []
    spoken, text = ("", text) if _POSTCODE.search(text) else spoken_postcode(text)
    unit = next((u for piece in text.split(",") if (u := unit_in(piece, asked=False))), "")  # "flat 2, 9 ...": not 29
    if unit:
        parts.append(unit)
    street = _NUMBERED.search(text) or _AT_NUMBER.search(text)
    named = _NAMED.search(text) if asked and not street else None
    if street:
        line = f"{street.group(1).upper()} {_title(street.group(2))}"
        town = _TOWN.match(text[street.end():])
        parts.append(line + (f", {town.group(1)}" if town else ""))
    elif named and named.group(1).split()[0][:1].isupper():
        parts.append(_title(named.group(1)))
    if not parts and asked and not _NOT_PLACE.search(text) and text.strip(" ,."):
        bare = _numbered_name(text) or unit_in(text, asked=True) or _named_place(text)
        if bare:
            parts.append(bare)
    code = _POSTCODE.search(text)
    if spoken:
        parts.append(spoken)
    elif code and any(c.isdigit() for c in code.group(1)):
        parts.append(f"{code.group(1)} {code.group(2)}".upper())
    elif (zip_code := _ZIP.search(text)) is not None:
        parts.append(zip_code.group(1))
    seen: list[str] = []
    for p in parts:
        if not any(p.lower() in s.lower() for s in seen):
            seen.append(p)
    return ", ".join(seen)


_SENTENCE = {"i", "i'm", "im", "my", "me", "you", "your", "can", "could", "need", "want", "leave", "message", "please",
             "is", "are", "was", "do", "does", "have", "has", "will", "would", "just", "about", "call", "ring"}
_PLACE_LEAD = re.compile(r"^\s*(?:(?:yes|yeah|so|um|uh|it's|its|it is|we're at|i'm at|the address is|address is|that's|at)\b[\s,]*)+", re.I)


def _named_place(text: str) -> str:
    """An address with no number, said as the answer, in capitals: "Lane End Farm, Pool in Wharfedale"."""
    rest = _PLACE_LEAD.sub("", text).strip(" .")
    words = re.findall(r"[\w']+", rest)
    if len(words) > 8 or any(x.lower() in _SENTENCE for x in words):
        return ""  # a sentence ("Can I leave a message anyway, ... on Thursday"), not a place's name
    names = re.findall(r"\b[A-Z][a-z]+", rest)
    placed = len(names) >= 3 or (len(names) >= 2 and re.search(rf"\b(?:{_STREET}|{_BUILDING})\b", rest, re.I) is not None)
    return rest[:80] if placed and rest[:1].isupper() and not re.search(r"\d{5,}", rest) else ""


_HOUSE_AND_NAMES = re.compile(r"^\s*(?:(?:it's|its|it is|that's|yes|yeah|so|um)\b[\s,]*)*(\d{1,4}[a-z]?)\s+((?:[A-Z][\w'-]*|y|yr|de|la|le)(?:[\s,]+(?:[A-Z][\w'-]*|y|yr|de|la|le)){1,5})\s*\.?\s*$")


def _numbered_name(text: str) -> str:
    """A house number and a street in words the street list does not know, as the answer: "12 Heol y Nant Cardiff"."""
    m = _HOUSE_AND_NAMES.match(text)
    return f"{m.group(1).upper()} {m.group(2).strip(' ,')}" if m and len(re.findall(r"[A-Z][a-z]+", m.group(2))) >= 2 else ""


def refuses_place(text: str) -> bool:
    return _NOT_PLACE.search(text[:MAX_TEXT]) is not None
