"""The words of a caller's name: which words may be one (names that are also words, "Will",
"Grace Hill", where a name stands), and the pieces a name is given in ("Dan, Daniel Okafor",
"Siobhan, that's S I O B H A N, Kelly", "Ann with an e"). Used by ``bot.names``."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from bot.language import DIGIT_WORDS, FILLERS, MAX_TEXT, NOT_NAME, STOP

TITLES = {"mr": "Mr", "mrs": "Mrs", "ms": "Ms", "miss": "Miss", "dr": "Dr", "doctor": "Dr", "mister": "Mr", "mx": "Mx"}
# first names that are also words: taken as a name where a name stands ("this is Will Hunt")
GIVEN_WORDS = {"bill", "will", "may", "mark", "rose", "grace", "hope", "faith", "joy", "pat", "sue", "jack", "frank", "art",
               "bob", "ray", "dawn", "april", "june", "summer", "penny", "ruby", "holly", "ivy", "robin", "sandy", "drew",
               "grant", "miles", "dean", "rob", "max", "guy", "sky", "amber", "daisy", "lily", "heather", "victor", "norman"}
# never part of a name: grammar, answers, placeholders and what a caller says instead of a name
HARD = STOP | FILLERS | set(DIGIT_WORDS) | set("""
    yes yeah yep yup nope nah sure ok okay right correct alright hi hello hey bye goodbye thanks thank sorry caller name
    number phone message someone somebody anyone anybody nobody everyone not no none unknown anonymous private withheld
    his her their its them they he she him myself yourself calling ringing phoning speaking here there
    come came gone been loose off out going getting doing having being making fixed sorted done over again
    due ready available free busy open closed booked away sure fine ok gonna about like than then
    started stopped happened finished changed moved broken cracked leaked flooded worked tried called sorted fixed
    something nothing everything anything area code what's who's where's how's here's he's she's let's
    never mind use try put send keep ring probably maybe perhaps wide pitch ever spelt spelled spelling spell
    into onto by near under via bad worse worst pretty really quite totally completely still also even
    ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
    eighty ninety hundred thousand midnight midday noon outside inside upstairs downstairs
    i've ive i'd id i'll ill we we're we've they're you're don't can't won't isn't it's its wait hang hold
    more less most after before hours duh anyway cheers ta tara ta-ra cheerio hyphen dash apostrophe
    rarely usually hardly barely seldom mostly mainly normally generally typically currently constantly literally honestly
    seriously finally nearly almost already frequently occasionally only just always often sometimes
    plus extension ext landline mobile cell through thru said says told asked wants needs go ahead carry proceed continue
    that's thats
    """.split())
PLACE_WORDS = {"road", "street", "lane", "avenue", "drive", "way", "close", "crescent", "terrace", "court", "place",
               "square", "gardens", "grove", "row", "walk", "view", "estate", "house", "cottage", "farm"}
# the trade or kind of an organisation: "Marshall Roofing", "Castle Home Insurance" is a company, no one's name
COMPANY = {"roofing", "plumbing", "heating", "painting", "painters", "decorating", "decorators", "builders", "construction",
           "electrical", "electrics", "electricians", "plumbers", "lettings", "estates", "properties", "management", "insurance",
           "assurance", "pharmacy", "chemist", "chemists", "clinic", "hospital", "surgery", "dental", "veterinary", "vets", "school",
           "academy", "council", "services", "solutions", "supplies", "ltd", "limited", "inc", "llc", "plc", "company", "group",
           "agency", "associates", "removals", "movers", "cleaning", "cleaners", "landscaping", "glazing", "locksmiths", "mutual"}
BOUNDARY = {"and", "from", "here", "speaking", "calling", "in", "at", "on", "with", "please", "thanks", "thank", "ringing",
            "phoning", "again", "but", "so", "my", "i", "i'm", "im", "about", "regarding", "who", "the", "of", "for", "to"}
_SPELL_LEAD = {"that's", "thats", "spelled", "spelt", "spelling", "it's", "its", "is", "as", "in"}
_SOUNDS = {"c": ("ck", "k"), "k": ("ch", "c"), "y": ("i",), "i": ("y",), "z": ("s",), "s": ("z",), "f": ("ph",), "ph": ("f",)}
_SENTENCE_START = {"i", "i'm", "i've", "i'd", "i'll"}
# inside a name, before its next word: "Van der Berg", "Siobhan Ó Briain", "Al-Masri" is one word already
PARTICLES = {"van", "von", "der", "den", "de", "da", "di", "du", "del", "della", "le", "la", "ó", "ni", "ní", "mac", "bin", "ibn",
             "ben", "al", "el", "st", "ter"}
# a piece that explains the one before ("April, like the month, April Dunmore"): skipped between tries
_EXPLAINS = {"like", "as"}
_SURNAME_WORDS = {"surname", "last", "family", "second", "middle", "first"}  # "John, surname Smith" is read as a surname
_CORRECTS = {"sorry", "actually", "no", "well", "or"}  # before the name said again: "Bob, well, Robert"


class Tok:
    __slots__ = ("low", "orig")

    def __init__(self, orig: str) -> None:
        self.orig, self.low = orig, orig.lower().replace("’", "'")


_SPELT_MARKS = re.compile(r"[\s,]*\b(?:apostrophe|hyphen|dash)\b[\s,]*", re.I)  # "o apostrophe n e i l l"
_HYPHENED = re.compile(r"\b[^\W\d_](?:-[^\W\d_])+\b")  # "L-O-W-E"
_DOUBLED = re.compile(r"\b(?:double|two) ([^\W\d_])\b", re.I)  # "double l"
_CAPITAL = re.compile(r"\b(?:capital|big|small|lower ?case) ([^\W\d_])\b", re.I)  # "capital L"
_FOR_WORD = re.compile(r"\b([^\W\d_]) (?:for|like) ([^\W\d_][\w']*)", re.I)  # "S for sierra", "q for queen": the letter
_AS_IN = re.compile(r"\b([^\W\d_]) (?:as in) [^\W\d_][\w']*", re.I)  # "g as in golf"


def spelt_plainly(text: str) -> str:
    """A spelling as one letter after another: "L-O-W-E", "g i double l", "capital L", "b as in boy"."""
    text = _SPELT_MARKS.sub(" ", _HYPHENED.sub(lambda m: m.group(0).replace("-", " "), text))
    text = _CAPITAL.sub(r"\1", _DOUBLED.sub(r"\1 \1", text))
    text = _AS_IN.sub(r"\1", text)
    text = _FOR_WORD.sub(lambda m: m.group(1) if m.group(1).lower() == m.group(2)[0].lower() else m.group(0), text)
    # "gillian pell g i l l ...": the spelling is a piece of its own (not after "spelt", "it's")
    text = _LETTERS_AFTER.sub(lambda m: m.group(1) + ("" if m.group(1).lower() in _SPELL_LEAD | {"with"} else ",") + " ", text)
    return _LETTERS_BEFORE.sub(r"\1, ", text)  # "kaitlyn k a i t l y n ross": the surname after the spelling is a piece too


_LETTERS_AFTER = re.compile(r"\b([^\W\d_][\w']+) (?=(?:[^\W\d_] ){2,}[^\W\d_]\b)")
_LETTERS_BEFORE = re.compile(r"(?<![\w'])((?:[^\W\d_] ){2,}[^\W\d_]) (?=[^\W\d_][\w']+)")


def tokens(text: str) -> list[Tok]:
    """Words, commas and sentence ends; fillers dropped; the dot of "Dr." and "Mrs." too."""
    out: list[Tok] = []
    for t in re.findall(r"[^\W\d_][\w'’\-]*|\d+|[,.;:!?]", spelt_plainly(text[:MAX_TEXT])):
        tok = Tok(t)
        if tok.low in FILLERS and tok.low != "oh" or (tok.low == "." and out and out[-1].low in TITLES):
            continue
        if tok.low == "." and len(out) >= 2 and len(out[-1].low) == 1 and out[-2].low in TITLES:
            continue  # "Mr P. Sutcliffe": the dot of an initial
        if tok.low == "oh" and not (out and len(out[-1].low) == 1):  # "A O I F E" keeps its O
            continue
        out.append(tok)
    return out


def cased_text(toks: list[Tok]) -> bool:
    """Whether capitals mean something here: a capital inside a sentence, other than "I"."""
    prev = "."
    for t in toks:
        if t.orig[:1].isupper() and prev not in ".?!" and t.low not in _SENTENCE_START:
            return True
        prev = t.low
    return False


_CLITIC = re.compile(r"(?:n't|'s|'re|'ve|'ll|'d|'m)$")


def cap(t: Tok) -> str:
    if t.orig != t.orig.lower() and t.orig != t.orig.upper() and t.orig[:1].isupper():
        return t.orig.strip("'-").replace("’", "'")  # as written: McDonald, DeShawn, O'Connor
    parts = re.split(r"([-'])", t.low.strip("'-"))
    return "".join(p if p in "-'" else p.capitalize() for p in parts)


def namelike(t: Tok, *, first: bool, nxt: str, cased: bool, strict: bool) -> bool:
    """A word that may be (part of) a name here; ``nxt``: the next word of its piece ("" at its end)."""
    w = t.low.strip("'-")
    if not re.fullmatch(r"[^\W\d_](?:[^\W\d_]|['\-](?=[^\W\d_]))*", w) or not 2 <= len(w) <= 30 or _CLITIC.search(w):
        return False  # no digits ("LS6"), no "hasn't", "we're", "dog's"
    if strict and cased and not t.orig[:1].isupper():
        return False
    capital = cased and t.orig[:1].isupper()
    if w in GIVEN_WORDS:  # "this is will hunt", but not "will my insurance cover it"
        return capital or not first or w not in HARD or not nxt or nxt not in HARD | BOUNDARY
    if w in HARD or w in BOUNDARY or any(part in HARD for part in w.split("-")[1:]):
        return False  # ... or "eighty-two"
    if w in NOT_NAME:  # a word of a request or a problem: a name only where one clearly stands ("Grace Hill")
        return capital or (not cased and not first and not nxt)
    return not (first and len(w) >= 6 and w.endswith("ing") and not capital)


def segments(toks: list[Tok]) -> list[list[Tok]]:
    """The words up to the end of the sentence, in comma-separated pieces."""
    segs: list[list[Tok]] = [[]]
    for t in toks:
        if t.low in ".?!;:":
            break
        if t.low == ",":
            segs.append([])
        else:
            segs[-1].append(t)
    return [s for s in segs if s] if any(segs) else []


def letters(seg: list[Tok]) -> str:
    """A spelling ("S I O B H A N", "that's W S Z O L E K") as one word, or ""."""
    words = [t.low for t in seg]
    while words and words[0] in _SPELL_LEAD:
        words = words[1:]
    if 2 <= len(words) <= 30 and all(len(w) == 1 and w.isalpha() for w in words):  # no name is longer
        return "".join(words)
    return ""


def similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a) or SequenceMatcher(None, a, b).ratio() >= 0.6


def piece(seg: list[Tok], *, cased: bool, strict: bool) -> tuple[list[str], str, list[str]]:
    """A piece's name words (a title first), the letter of "with a c", and the words after them."""
    words: list[str] = []
    i = 0
    if seg and seg[0].low.rstrip(".") in TITLES:
        words.append(TITLES[seg[0].low.rstrip(".")])
        i = 1
        if len(seg) > 2 and len(seg[1].low) == 1 and seg[1].low.isalpha() and seg[1].low not in ("a", "i"):
            i = 2  # "Mrs J Patterson": a title, an initial and the surname; the initial is left out
    while i < len(seg) and len(words) < 5:
        nxt = seg[i + 1].low if i + 1 < len(seg) else ""
        if words and seg[i].low in PARTICLES and nxt and namelike(seg[i + 1], first=False, nxt="", cased=cased, strict=False):
            words.append(seg[i].orig if cased else seg[i].low)  # "Van der Berg", "Ó Briain": as said
            i += 1
            continue
        if len(words) >= 2 and nxt in ("is", "was", "isn't", "wasn't"):
            break  # "megan walsh, meg is just what my friends call me": a new sentence's subject
        if len(words) >= 2 and not cased and len(seg[i].low) >= 6 and seg[i].low.endswith("ing"):
            break  # "shona mcbride cancelling monday at ten": what she is doing, not a third name
        ok = namelike(seg[i], first=len(words) == 0 or words == words[:1] and words[0] in TITLES.values(),
                      nxt=nxt, cased=cased, strict=strict)
        if not ok:
            break
        words.append(cap(seg[i]))
        i += 1
    letter = ""
    rest = [t.low for t in seg[i:]]
    if words and rest[:2] in (["with", "a"], ["with", "an"]) and len(rest) >= 3 and len(rest[2]) <= 2:
        letter, rest = rest[2], rest[3:]
    if words and len(rest) > 2 and rest[0] in _SPELL_LEAD and len(rest[1]) == len(rest[2]) == 1:
        rest = rest[1:]  # "nadia quayle thats q u a y l e": the spelling of the name just said
    run = next((k for k, w in enumerate(rest) if not (len(w) == 1 and w.isalpha())), len(rest))
    spelled = "".join(rest[:run])
    if words and 2 <= run <= 30 and similar(words[-1], spelled):  # "james whitfield w h i t f i e l d"
        words[-1], rest = spelled.capitalize(), rest[run:]
    if words and all(w in TITLES.values() for w in words):
        words = []
    return words, letter, rest


def _spelled_into(name: list[str], spelled: str) -> list[str]:
    """A spelling replaces the word of the name it spells, or, after a first name, is the surname."""
    words = [w for w in name if w not in TITLES.values()]
    plain = [re.sub(r"[^\w]", "", w).lower() for w in words]
    if spelled == "".join(plain) or spelled in plain or "".join(plain).endswith(spelled) and len(spelled) > 2:
        return name  # the whole name spelled: "Gillian Pell, G I L L I A N P E L L"
    if any(spelled == part.lower() for w in words if "-" in w for part in w.split("-")):
        return name  # "Pryce-Jones, P R Y C E, hyphen, Jones": a part of a double-barrelled name
    best = max(words, key=lambda w: SequenceMatcher(None, w.lower(), spelled).ratio())
    if similar(best, spelled):
        return [spelled.capitalize() if w == best else w for w in name]
    return [*name, spelled.capitalize()] if len(words) == 1 else name


def read_name(segs: list[list[Tok]], *, cased: bool, strict: bool) -> tuple[list[str], list[str]]:
    """The name given over the pieces after a cue: later pieces repeat, complete, spell or
    correct it ("Dan, Daniel Okafor", "Siobhan, S I O B H A N, Kelly", "Ann, Ann with an e").
    (The name, and the words after it: the rest of its piece, or "," and the pieces not read.)"""
    name: list[str] = []
    alone = corrected = False
    for k, seg in enumerate(segs):
        if name and len(seg) == 1 and seg[0].low in _CORRECTS:
            corrected = True  # "Bob, well, Robert, Robert Fairclough": the name said next replaces it
            continue
        spelled = letters(seg)
        if spelled:  # "S M Y T H E": the word it spells, in the name or as the name
            name = _spelled_into(name, spelled) if name else [spelled.capitalize()]
            continue
        if name and seg[0].low in _EXPLAINS and k + 1 < len(segs):
            continue  # "Dawn, like the sunrise, Dawn Whitaker": the explanation between two tries
        while name and len(seg) > 1 and (seg[0].low in FILLERS or (seg[0].low == "and" and len(name) == 1)):
            seg = seg[1:]  # "bob, uh, robert klein"; "siobhan, s i o b h a n, and gallagher"
        if name and seg[0].low in _CORRECTS | {"that's", "thats"}:
            corrected = corrected or seg[0].low in _CORRECTS
            seg = seg[1:]  # "alex, that's alex morgan", "Alex, well Alexandra": the name said again, in full
        words, letter, rest = _piece_put_right(seg, cased=cased, strict=strict and k == 0)
        if not words:
            return name, [","] + [t.low for s in segs[k:] for t in s]  # the name ended with its piece
        ends = not rest or rest[0] in BOUNDARY
        joined = _joined(name, words, corrected=corrected, alone=alone and ends, after_one=alone and ends)
        if joined is None:
            return name, [","] + [t.low for s in segs[k:] for t in s]  # the name ended with its piece
        name, corrected = joined, False
        if letter:
            name = respell(name, letter)
        alone = not rest
        if rest:
            return name, rest + [t.low for s in segs[k + 1:] for t in s]
    return name, []


def _piece_put_right(seg: list[Tok], *, cased: bool, strict: bool) -> tuple[list[str], str, list[str]]:
    """``piece``, with a correction said in the same breath: "it's tom no thomas reilly"."""
    words, letter, rest = piece(seg, cased=cased, strict=strict)
    if words and len(rest) > 1 and rest[0] in _CORRECTS:
        fix, fix_letter, fix_rest = piece(seg[len(seg) - len(rest) + 1:], cased=cased, strict=False)
        if fix:
            return _put_right(words, fix), fix_letter or letter, fix_rest
    return words, letter, rest


def _put_right(words: list[str], fix: list[str]) -> list[str]:
    """A name corrected as it is said: a whole name replaces it; one word said again ends it
    there ("sophie adeyemi splash, sorry, adeyemi"); one word like another replaces that one."""
    plain = [w for w in fix if w not in TITLES.values()]
    if len(plain) != 1:
        return fix
    same = next((j for j, w in enumerate(words) if w.lower() == plain[0].lower()), None)
    if same is not None:
        return words[:same + 1]
    like = next((j for j, w in enumerate(words) if similar(w, plain[0])), None)
    return [*words[:like], plain[0], *words[like + 1:]] if like is not None else fix


def _joined(name: list[str], words: list[str], *, corrected: bool, alone: bool, after_one: bool) -> list[str] | None:
    """The name so far with a later piece's words, or None when they are no part of it
    (``alone``: the name so far and this piece are each a piece of their own; ``after_one``: the
    name so far is)."""
    plain = [w for w in words if w not in TITLES.values()]
    have = [w for w in name if w not in TITLES.values()]
    if not name or (corrected and plain):
        return words
    if plain and similar(plain[0], have[0]):
        return words if len(words) >= len(name) else name  # "Bill, Bill Foster"; "Dan, Daniel Okafor"; "Marc Dubois, Marc with a c"
    if after_one and len(have) == 1 and len(plain) >= 2 and not (COMPANY | PLACE_WORDS | _SURNAME_WORDS) & {w.lower() for w in plain}:
        return words  # "gaz, gareth moss": a first name, then the name in full
    if plain and plain[-1] in name:
        return words if len(plain) >= len(have) else name  # "Okonkwo, Chidi Okonkwo"; "Fiona McAllister, Mrs McAllister"
    if alone and len(plain) == 1 and len(have) == 1:
        return [*name, plain[0]]  # "Siobhan, ..., Kelly"
    return None


def respell(name: list[str], letter: str) -> list[str]:
    """ "Mark with a c" -> "Marc"; "Ann with an e" -> "Anne"."""
    i = next((k for k, w in enumerate(name) if w not in TITLES.values()), None)
    if i is None:
        return name
    first = name[i].lower()
    if letter in first:
        return name
    for old in _SOUNDS.get(letter, ()):
        j = first.rfind(old)
        if j > 0 or (j == 0 and first.count(old) == 1):  # "Catherine with a K": its first letter too
            return [*name[:i], (first[:j] + letter + first[j + len(old):]).capitalize(), *name[i + 1:]]
    if letter == "e":
        return [*name[:i], name[i] + "e", *name[i + 1:]]
    return name
