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
    due ready available free busy open closed booked away sure fine ok gonna about like
    into onto by near under via bad worse worst pretty really quite totally completely still also even
    ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
    eighty ninety hundred thousand midnight midday noon outside inside upstairs downstairs
    i've ive i'd id i'll ill we we're we've they're you're don't can't won't isn't it's its wait hang hold
    """.split())
BOUNDARY = {"and", "from", "here", "speaking", "calling", "in", "at", "on", "with", "please", "thanks", "thank", "ringing",
            "phoning", "again", "but", "so", "my", "i", "i'm", "im", "about", "regarding", "who", "the", "of", "for", "to"}
_CUES = [  # (words, strong): a strong cue takes any name-like words; a weak one needs them to look like a name
    ("my name is", True), ("my name's", True), ("my names", True), ("name is", True), ("name's", True),
    ("the name is", True), ("the name's", True), ("this is", True), ("you're speaking to", True), ("you're speaking with", True),
    ("it's", False), ("its", False), ("it is", False), ("i am", False), ("i'm", False), ("im", False), ("call me", False),
    ("that's", False), ("thats", False),
]
_AFTER_ONE = {",", "and", "from", "here", "speaking", "calling", "ringing", "phoning", "with", "in", "at"}  # "it's John, ..."
_NAME_TAIL = {"from", "here", "speaking", "calling", "ringing", "phoning"}
_IT_CUES = {"it's", "its", "it", "that's", "thats"}
_NOT_OWNER = {"her", "his", "its", "their", "our", "your"}  # "her name's Mittens": the pet's, not the caller's
_SPELL_LEAD = {"that's", "thats", "spelled", "spelt", "spelling", "it's", "its", "is", "as", "in"}
_ANSWER_LEAD = {"yes", "yeah", "yep", "sure", "ok", "okay", "well", "so", "hi", "hello", "hey", "it's", "its", "it", "is", "oh",
                "right", "name", "my", "that's", "thats", "sorry", "no", "nope", "actually", "wait", "me", "and", "er", "um"}
_REFUSE = re.compile(r"\b(?:rather not|prefer not|don't want to|do not want to|won't|not giving|not going to give|no name|"
                     r"anonymous|not telling|none of your)\b", re.I)
_SOUNDS = {"c": ("ck", "k"), "k": ("c",), "y": ("i",), "i": ("y",), "z": ("s",), "s": ("z",), "f": ("ph",), "ph": ("f",)}
_SENTENCE_START = {"i", "i'm", "i've", "i'd", "i'll"}


class _Tok:
    __slots__ = ("low", "orig")

    def __init__(self, orig: str) -> None:
        self.orig, self.low = orig, orig.lower().replace("’", "'")


def _tokens(text: str) -> list[_Tok]:
    """Words, commas and sentence ends; fillers dropped; the dot of "Dr." and "Mrs." too."""
    out: list[_Tok] = []
    for t in re.findall(r"[^\W\d_][\w'’\-]*|\d+|[,.;:!?]", text[:MAX_TEXT]):
        tok = _Tok(t)
        if tok.low in FILLERS and tok.low != "oh" or (tok.low == "." and out and out[-1].low in TITLES):
            continue
        if tok.low == "oh" and not (out and len(out[-1].low) == 1):  # "A O I F E" keeps its O
            continue
        out.append(tok)
    return out


def _cased(toks: list[_Tok]) -> bool:
    """Whether capitals mean something here: a capital inside a sentence, other than "I"."""
    prev = "."
    for t in toks:
        if t.orig[:1].isupper() and prev not in ".?!" and t.low not in _SENTENCE_START:
            return True
        prev = t.low
    return False


def _cap(t: _Tok) -> str:
    if t.orig != t.orig.lower() and t.orig != t.orig.upper() and t.orig[:1].isupper():
        return t.orig.strip("'-").replace("’", "'")  # as written: McDonald, DeShawn, O'Connor
    parts = re.split(r"([-'])", t.low.strip("'-"))
    return "".join(p if p in "-'" else p.capitalize() for p in parts)


def _namelike(t: _Tok, *, first: bool, before_boundary: bool, cased: bool, strict: bool) -> bool:
    """A word that may be (part of) a name here."""
    w = t.low.strip("'-")
    if not re.fullmatch(r"[^\W\d_][\w'\-]*", w) or not 2 <= len(w) <= 30:
        return False
    if strict and cased and not t.orig[:1].isupper():
        return False
    capital = cased and t.orig[:1].isupper()
    if w in GIVEN_WORDS:  # "this is will hunt"; after a weak cue only where it stands alone ("it's will, ...")
        return before_boundary or not first or capital or not strict or w not in HARD
    if w in HARD or w in BOUNDARY:
        return False
    if w in NOT_NAME:  # a word of a request or a problem: a name only where one clearly stands ("Grace Hill")
        return capital or (not first and before_boundary)
    return not (first and len(w) >= 6 and w.endswith("ing") and not capital)


def _segments(toks: list[_Tok]) -> list[list[_Tok]]:
    """The words up to the end of the sentence, in comma-separated pieces."""
    segs: list[list[_Tok]] = [[]]
    for t in toks:
        if t.low in ".?!;:":
            break
        if t.low == ",":
            segs.append([])
        else:
            segs[-1].append(t)
    return [s for s in segs if s] if any(segs) else []


def _letters(seg: list[_Tok]) -> str:
    """A spelling ("S I O B H A N", "that's W S Z O L E K") as one word, or ""."""
    words = [t.low for t in seg]
    while words and words[0] in _SPELL_LEAD:
        words = words[1:]
    if len(words) >= 2 and all(len(w) == 1 and w.isalpha() for w in words):
        return "".join(words)
    return ""


def _similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a) or SequenceMatcher(None, a, b).ratio() >= 0.6


def _piece(seg: list[_Tok], *, cased: bool, strict: bool) -> tuple[list[str], str, list[str]]:
    """A piece's name words (a title first), the letter of "with a c", and the words after them."""
    words: list[str] = []
    i = 0
    if seg and seg[0].low.rstrip(".") in TITLES:
        words.append(TITLES[seg[0].low.rstrip(".")])
        i = 1
    while i < len(seg) and len(words) < 5:
        nxt = seg[i + 1].low if i + 1 < len(seg) else ""
        ok = _namelike(seg[i], first=len(words) == 0 or words == words[:1] and words[0] in TITLES.values(),
                       before_boundary=not nxt or nxt in BOUNDARY, cased=cased, strict=strict)
        if not ok:
            break
        words.append(_cap(seg[i]))
        i += 1
    letter = ""
    rest = [t.low for t in seg[i:]]
    if words and rest[:2] in (["with", "a"], ["with", "an"]) and len(rest) >= 3 and len(rest[2]) <= 2:
        letter, rest = rest[2], rest[3:]
    if words and all(w in TITLES.values() for w in words):
        words = []
    return words, letter, rest


def _read(segs: list[list[_Tok]], *, cased: bool, strict: bool) -> tuple[list[str], list[str]]:
    """The name given over the pieces after a cue: later pieces repeat, complete, spell or
    correct it ("Dan, Daniel Okafor", "Siobhan, S I O B H A N, Kelly", "Ann, Ann with an e").
    (The name, and the words after it: the rest of its piece, then the pieces not read.)"""
    name: list[str] = []
    alone = False
    for k, seg in enumerate(segs):
        spelled = _letters(seg) if name else ""
        if spelled:
            words = [w for w in name if w not in TITLES.values()]
            best = max(words, key=lambda w: SequenceMatcher(None, w.lower(), spelled).ratio())
            if _similar(best, spelled):
                name[name.index(best)] = spelled.capitalize()
            elif len(words) == 1:
                name.append(spelled.capitalize())
            continue
        words, letter, rest = _piece(seg, cased=cased, strict=strict and k == 0)
        plain = [w for w in words if w not in TITLES.values()]
        have = [w for w in name if w not in TITLES.values()]
        if not words:
            return name, [t.low for s in segs[k:] for t in s]
        if not name:
            name = words
        elif plain and _similar(plain[0], have[0]):
            name = words if len(words) >= len(name) or letter else name  # "Bill, Bill Foster"; "Dan, Daniel Okafor"
        elif plain and plain[-1] in name:
            name = words  # "Okonkwo, Chidi Okonkwo"
        elif alone and len(plain) == 1 and len(have) == 1 and not rest:
            name = [*name, plain[0]]  # "Siobhan, ..., Kelly"
        else:
            return name, [t.low for s in segs[k:] for t in s]
        if letter:
            name = _respell(name, letter)
        alone = not rest
        if rest:
            return name, rest + [t.low for s in segs[k + 1:] for t in s]
    return name, []


def _respell(name: list[str], letter: str) -> list[str]:
    """ "Mark with a c" -> "Marc"; "Ann with an e" -> "Anne"."""
    i = next((k for k, w in enumerate(name) if w not in TITLES.values()), None)
    if i is None:
        return name
    first = name[i].lower()
    if letter in first:
        return name
    for old in _SOUNDS.get(letter, ()):
        j = first.rfind(old)
        if j > 0:
            return [*name[:i], (first[:j] + letter + first[j + len(old):]).capitalize(), *name[i + 1:]]
    if letter == "e":
        return [*name[:i], name[i] + "e", *name[i + 1:]]
    return name


def _finish(words: list[str]) -> str | None:
    return " ".join(words[:4]) if words else None


def _cue_at(toks: list[_Tok], i: int) -> tuple[int, bool] | None:
    """The cue starting at token ``i``: (its length, strong)."""
    for cue, strong in _CUES:
        parts = cue.split()
        if [t.low for t in toks[i:i + len(parts)]] == parts:
            before = toks[i - 1].low if i else ""
            if parts[0] in ("name", "name's", "name is") and (before in _NOT_OWNER or before.endswith("'s")):
                return None
            return len(parts), strong
    return None


def name_in(text: str, *, asked: bool = False) -> str | None:
    """The caller's name in ``text``, after a cue or (``asked``: the bot just asked for it) as
    a bare answer; placeholders ("yes", "the caller") are never a name. A strong cue wins
    over a weak one; among equals, the last (a caller who corrects themselves)."""
    toks = _tokens(text)
    cased = _cased(toks)
    best: tuple[bool, list[str]] | None = None
    i = 0
    while i < len(toks):
        cue = _cue_at(toks, i)
        if cue is None:
            i += 1
            continue
        n, strong = cue
        name, after = _read(_segments(toks[i + n:]), cased=cased, strict=not strong)
        plain = [w for w in name if w not in TITLES.values()]
        if not (strong or asked or cased) and toks[i].low in _IT_CUES and not _signed(plain, after):
            i += n  # "it's midnight", "it's nineteen degrees": uncased, "it's" names only when asked or "it's pete rossi from..."
            continue
        trusted = strong or asked or len(plain) >= 2 or name[:1] != plain[:1] or not after or after[0] in _AFTER_ONE
        if toks[i].low in ("that's", "thats") and len(plain) < 2:
            trusted = False
        if plain and trusted and (best is None or strong >= best[0]):
            best = (strong, name)
        i += n
    if best is None:
        best_words = _here(toks, cased)
        if best_words:
            best = (True, best_words)
    if best is None:
        best_words = _piece_alone(toks) if cased else []
        if best_words:
            best = (False, best_words)
    if best is None and asked:
        return bare_name(text)
    return _finish(_surname(best[1], toks, cased)) if best else None


def _surname(name: list[str], toks: list[_Tok], cased: bool) -> list[str]:
    """ "my first name is John, surname Smith": the surname said on its own joins the name."""
    for i, t in enumerate(toks[:-1]):
        k = i + 1
        if t.low in ("surname", "lastname") or (t.low == "name" and i and toks[i - 1].low in ("last", "family", "second")):
            k += 1 if toks[k].low in ("is", "'s") else 0
            if k < len(toks) and _namelike(toks[k], first=False, before_boundary=True, cased=cased, strict=False):
                plain = [w for w in name if w not in TITLES.values()]
                return [*name[:-1], _cap(toks[k])] if len(plain) >= 2 else [*name, _cap(toks[k])]
    return name


def _signed(plain: list[str], after: list[str]) -> bool:
    """A name followed by what follows names ("pete rossi from the third floor", "ann lee here"),
    or a first name and surname of words that are no words of a problem ("it's grace hill")."""
    if not plain:
        return False
    if after and after[0] in _NAME_TAIL:
        return True
    return len(plain) >= 2 and (not after or after[0] in BOUNDARY) and not any(
        w.lower() in NOT_NAME and w.lower() not in GIVEN_WORDS for w in plain)


def _here(toks: list[_Tok], cased: bool) -> list[str]:
    """ "Mark Davis here", "Doctor Ortiz speaking"."""
    for i, t in enumerate(toks):
        if t.low in ("here", "speaking") and i:
            k = i
            while k > 0 and i - k < 3 and _namelike(toks[k - 1], first=False, before_boundary=True, cased=cased, strict=False):
                k -= 1
            if k > 0 and toks[k - 1].low.rstrip(".") in TITLES:
                k -= 1
            if k < i and (k == 0 or toks[k - 1].low in (",", ".") or toks[k].low.rstrip(".") in TITLES):
                words, _, _ = _piece(toks[k:i], cased=cased, strict=False)
                if words and (words[0] not in TITLES.values() or len(words) > 1):
                    return words
    return []


def _piece_alone(toks: list[_Tok]) -> list[str]:
    """A first name and surname said as a piece of their own in a cased transcript: "608 555
    0112, Laura Chen, can someone call me"."""
    pieces: list[list[_Tok]] = [[]]
    for t in toks:
        if t.low in ",.?!;:":
            pieces.append([])
        else:
            pieces[-1].append(t)
    for piece in pieces[1:]:
        if 2 <= len(piece) <= 3 and all(t.orig[:1].isupper() and t.low not in HARD and t.low not in TITLES for t in piece):
            words, _, rest = _piece(piece, cased=True, strict=True)
            if len(words) == len(piece) and not rest:
                return words
    return []


def bare_name(text: str, *, whole: bool = False) -> str | None:
    """The answer to "your name?" with no cue: "john smith", "yeah it's ann lee, thanks" ->
    the name; None when the words are not a name ("yes", "my sink is clogged"). ``whole``:
    only a name alone (where another answer was asked for)."""
    toks = _tokens(text)
    while toks and (toks[0].low in _ANSWER_LEAD or toks[0].low in ",?"):
        toks = toks[1:]
    if not toks:
        return None
    cased = _cased(toks)
    name, after = _read(_segments(toks), cased=cased, strict=False)
    if not name:
        return None
    later = [t.low for t in toks[next((k for k, t in enumerate(toks) if t.low in ".?!;:"), len(toks)):] if t.low not in ".?!;:,"]
    extra = [w for w in after + later if w not in ("thanks", "thank", "you", "please", "here", "speaking")]
    if (whole and extra) or (after and after[0] not in BOUNDARY and not _digitish(after[0])):
        return None  # more words of a sentence ("sink clogged" is no name anyway); where another answer was asked for, a name alone
    return _finish(name)


def _digitish(word: str) -> bool:
    return word.isdigit() or word in DIGIT_WORDS or word in ("double", "triple", "treble")


def refuses_name(text: str) -> bool:
    """ "I'd rather not give my name", "I don't want to say"."""
    return _REFUSE.search(text) is not None


def merge_name(old: str | None, new: str) -> str:
    """A one-word correction of a longer name replaces the word it resembles ("Mark Jones",
    then "Marc with a c" -> "Marc Jones"); anything else replaces the name."""
    if not old or len(new.split()) != 1 or len(old.split()) < 2:
        return new
    words = old.split()
    scores = [SequenceMatcher(None, w.lower(), new.lower()).ratio() for w in words]
    best = max(range(len(words)), key=lambda i: scores[i])
    if scores[best] < 0.6:
        return new
    words[best] = new
    return " ".join(words)
