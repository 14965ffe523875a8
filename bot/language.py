"""Reading what callers say, from speech recognition: normalised words with a light
stemmer (so "parcels", "parking" and "leaking" meet "parcel", "park" and "leak"),
phrase matching on those stems, spoken digits, names, yes and no."""

from __future__ import annotations

import functools
import re

DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2", "three": "3",
               "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
SPOKEN = "zero one two three four five six seven eight nine".split()
FILLERS = {"um", "uh", "erm", "er", "ah", "hmm", "mm", "mhm", "uhh", "umm", "eh", "oh", "huh"}
STOP = {
    "a", "an", "the", "i", "i'm", "im", "me", "my", "you", "your", "we", "our", "us", "it", "it's", "is", "are", "am", "was",
    "be", "do", "does", "did", "can", "could", "would", "will", "should", "to", "of", "for", "in", "on", "at", "and", "or",
    "what", "when", "where", "how", "which", "who", "there", "this", "that", "that's", "with", "have", "has", "hi", "hello",
    "hey", "please", "just", "like", "want", "wanted", "know", "need", "about", "any", "some", "if", "so", "um", "uh", "yes",
    "no", "get", "got", "also", "there's", "here", "tell", "ask", "asking", "wondering", "calling", "call", "up",
    "still", "really", "very", "much", "thanks", "thank", "okay", "ok", "well", "good", "morning", "afternoon", "evening",
}


# Contractions speech recognition writes without the apostrophe ("doesnt hurt", "cant breathe"):
# only the ones that are no other word ("its", "ill", "were", "wont"... stay as they are).
_CONTRACTIONS = {w.replace("'", ""): w for w in (
    "don't", "doesn't", "didn't", "can't", "isn't", "aren't", "wasn't", "weren't", "hasn't", "haven't", "hadn't",
    "couldn't", "wouldn't", "shouldn't", "there's", "that's", "what's", "i've", "you're", "they're", "he's", "she's",
    "won't")}
_CONTRACTION = re.compile(r"\b(" + "|".join(_CONTRACTIONS) + r")\b")


def normalise(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
    t = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group(1)], t)
    return " " + re.sub(r"\s+", " ", t).strip() + " "


def stem(word: str) -> str:
    w = word.strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: -len(suffix)] + keep
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "ls":  # "stopp(ed)" -> "stop"
        w = w[:-1]
    return w


@functools.lru_cache(maxsize=8192)
def _stemmed(phrase: str) -> str:
    """A phrase as Words.stems spells it (the keyword lists are fixed: computed once each)."""
    return " " + " ".join(stem(w) for w in normalise(phrase).split()) + " "


class Words:
    """An utterance as normalised text, words and their stems."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.text = normalise(raw)
        self.words = self.text.split()
        self.stems = " " + " ".join(stem(w) for w in self.words) + " "

    def has(self, *phrases: str) -> bool:
        """Any phrase present, as whole words, after stemming both sides."""
        return any(self.count(p) for p in phrases)

    def count(self, phrase: str) -> int:
        p = _stemmed(phrase)
        return int(p != "  " and p in self.stems)

    def content(self) -> set[str]:
        """Stems of the words that carry meaning (no stop words or fillers)."""
        return {stem(w) for w in self.words if w not in STOP and w not in FILLERS and len(w) > 1}

    @property
    def heard(self) -> bool:
        """False for an empty or unintelligible transcript (only fillers, no words)."""
        return any(re.search(r"[a-z0-9]", w) and w not in FILLERS for w in self.words)


YES = ("yes", "yeah", "yep", "yup", "correct", "right", "sure", "please", "ok", "okay", "that's right", "it is",
       "go ahead", "please do", "that would be great", "alright", "of course", "definitely", "absolutely")
NO = ("no", "nope", "nah", "wrong", "incorrect", "not really", "don't", "no thanks", "not now")


def is_yes(w: Words) -> bool:
    return w.has(*YES) and not w.has("no", "not", "nope", "wrong", "don't")


def is_no(w: Words) -> bool:
    return w.has(*NO) and not w.has("yes", "yeah", "sure")


def last_answer(w: Words) -> str | None:
    """The caller's final yes or no ("yes... no, wrong number" -> "no"); None if neither."""
    for word in reversed(w.words):
        if word in ("yes", "yeah", "yep", "yup", "correct", "right", "sure", "ok", "okay"):
            return "yes"
        if word in ("no", "nope", "nah", "wrong", "incorrect", "not"):
            return "no"
    return None


MAX_DIGITS = 15  # E.164: no phone number is longer; longer input is refused, never stored or spoken
MAX_TEXT = 1000  # characters of one utterance read for names, numbers and units (a minute of speech is ~900)
UNIT_WORDS = {"unit", "apartment", "apt", "flat", "suite", "room", "floor", "house", "building", "number"}
_RUN_GLUE = FILLERS | {"and", "then", "dash", "hyphen", "plus", "area", "code"}
_ONE_AS_WORD = {"work", "home", "mobile", "cell", "other", "this", "that", "new", "old", "the", "my", "different",
                "landline", "which", "no", "any", "last", "right", "wrong", "a", "another", "same", "office"}
# said right after a number: the caller corrects its end ("555 0155, no wait, 0156")
_CORRECTION = re.compile(r"\b(?:no wait|wait|sorry|i mean|no|actually|correction)\b")


def number_runs(text: str) -> list[str]:
    """Each group of digits said or written together, in order: "unit 12, my number is 555
    867 5309" -> ["12", "5558675309"]. Spoken digits ("oh", "double", "hundred"), numerals with
    dashes, dots or spaces; a sentence end or any other word ends a group; the first group of
    digits straight after "unit", "apartment" etc. is the unit, not part of the phone number."""
    runs: list[str] = []
    cur: list[str] = []
    after_unit = False
    text = text[:MAX_TEXT]

    def close() -> None:
        if cur:
            s = "".join(cur)
            s = re.sub(r"double(\d)", r"\1\1", s)
            s = re.sub(r"triple(\d)", r"\1\1\1", s)
            runs.append(re.sub(r"\D", "", s))
            cur.clear()

    tokens = re.findall(r"[a-z]+|\d+|[.?!;]", text.lower())
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        if tok.isdigit():
            if after_unit and not cur:
                runs.append(tok)
                after_unit = False
                continue
            cur.append(tok)
        elif tok == "one" and not cur and prev in _ONE_AS_WORD:  # "my work one, 0117...": a pronoun, not a digit
            close()
        elif tok in DIGIT_WORDS and (tok not in ("o", "to", "too", "for") or cur):
            cur.append(DIGIT_WORDS[tok])
        elif tok in ("double", "triple"):
            cur.append(tok)
        elif tok in ("hundred", "thousand") and cur and cur[-1].isdigit():
            cur.append("00" if tok == "hundred" else "000")
        elif tok in _RUN_GLUE and (cur or tok in ("plus", "area")):
            continue
        else:
            close()
            after_unit = tok in UNIT_WORDS
            continue
        after_unit = False
    close()
    return [r for r in runs if r]


def digits_in(text: str) -> str:
    """Every digit spoken or written, in order: "five five five, 213-4467" -> "5552134467"."""
    return "".join(number_runs(text.replace(".", " ")))


def phone_in(text: str) -> tuple[str, str]:
    """The phone number in an utterance: ("5558675309", "") for one of 7 to 15 digits (the
    last such group, or the groups said together in one breath); ("", "long") when the
    digits are more than a phone number can have (never stored or read back), ("", "short")
    for a few digits only, ("", "") for none."""
    runs = [r for r in number_runs(text) if r]
    if not runs:
        return "", ""
    if any(len(r) > MAX_DIGITS for r in runs):
        return "", "long"
    ok = [r for r in runs if len(r) >= 7]
    if ok:
        fixes = list(_CORRECTION.finditer(text[:MAX_TEXT].lower()))
        if fixes and ok[-1] in number_runs(text[:fixes[-1].start()]):  # "..., no wait, 0156": the new ending
            tail = number_runs(text[fixes[-1].end():MAX_TEXT])
            if len(tail) == 1 and len(tail[0]) <= 4:
                return ok[-1][:-len(tail[0])] + tail[0], ""
        return ok[-1], ""
    joined = "".join(runs)
    if 7 <= len(joined) <= MAX_DIGITS and len(runs) <= 4:  # "five five five ... one two three ... four five six seven"
        return joined, ""
    return "", "long" if len(joined) > MAX_DIGITS else "short"


def speak_number(number: str) -> str:
    """Digits in groups, as words, so any TTS reads them one by one (at most 15)."""
    d = re.sub(r"\D", "", number)[:MAX_DIGITS]
    if len(d) == 10:
        groups = [d[:3], d[3:6], d[6:]]
    elif len(d) > 10:  # "07700 900 123", "447 700 900 555"
        head = d[:-6]
        groups = ([head] if len(head) <= 5 else [head[i:i + 3] for i in range(0, len(head), 3)]) + [d[-6:-3], d[-3:]]
    else:
        groups = [d[:-4], d[-4:]] if len(d) > 4 else [d]
    return ", ".join(" ".join(SPOKEN[int(c)] for c in g) for g in groups if g)


def caller_digits(caller: str) -> str:
    """The caller's number, if it is one (a phone number or a sip: URI with digits): at most
    15 digits, a North American +1 without its country code; "" otherwise."""
    user = caller.split("sip:", 1)[-1].split("@", 1)[0]
    d = re.sub(r"\D", "", user)
    if len(d) == 11 and d.startswith("1"):
        d = d[1:]
    return d if 7 <= len(d) <= MAX_DIGITS else ""


# ---------------------------------------------------------------- names

# Words that are never (part of) a caller's name: what follows "this is" / "I'm" when no name
# comes, placeholders, answers, and the words of requests and problems.
NOT_NAME = STOP | FILLERS | set(DIGIT_WORDS) | set("""
    yes yeah yep yup nope nah sure ok okay right correct fine alright hi hello hey bye goodbye thanks thank please sorry
    caller calling called call ringing phoning phone number message messages name speaking here there someone somebody
    anyone anybody nobody everyone person people customer client tenant tenants resident patient patients owner landlord
    neighbour neighbor neighbours neighbors mom mum dad mother father wife husband son daughter friend calling regarding
    about not just only really actually also too again urgent emergency important quick quickly new old same other
    another back out away home in at from on off over under up down still already sure afraid worried concerned
    interested looking trying having getting going coming moving leaving staying wondering hoping waiting ringing
    stuck locked lost broken burst flooded flooding leaking leak leaks blocked clogged cracked damaged missing late
    early sick ill hurt bleeding pain sore swollen cold hot freezing noisy noise water heat heating gas fire smoke
    power light lights electric electricity boiler sink toilet shower bath bathroom kitchen ceiling roof window
    door lock key keys rent lease bill billing invoice payment deposit repair repairs maintenance appointment
    booking tooth teeth filling crown cleaning checkup parking package parcel delivery apartment unit flat house
    building office problem issue question complaint query request help the a an my your his her their our its
    is was be been being am are do did does done can could would should will shall may might must need needs want
    wants like love hate see saw say said tell told ask asked give gave get got make made take took leave left let
    know knew think thought feel felt call will with without for and but or nor so because if then than that this
    these those what which who whom whose when where why how all any some no none every each both either neither
    one two three four five six seven eight nine ten zero oh um uh er erm hmm well sir madam miss mister mr mrs ms
    dr doctor morning afternoon evening night today tonight tomorrow yesterday week weekend time moment minute
    end ends ending ended start starts first last digit digits bit part wait hang hold
    unknown anonymous none nobody unnamed blank redacted private withheld
    great perfect lovely wonderful brilliant awesome cool good everything true fab super nice excellent
    second hour day month year monday tuesday wednesday thursday friday saturday sunday wrong wrong number
    dialled dialed misdialed confused unsure sorry bothering disturbing ringing reaching reach trying tried
    """.split())
_NAME_END = {"and", "my", "number", "phone", "calling", "from", "here", "is", "at", "on", "the", "please", "speaking",
             "thanks", "thank", "in", "of", "with", "i", "i'm", "im", "could", "can", "would", "about", "you", "but", "so",
             "regarding", "who", "that", "unit", "apartment", "flat", "to", "i've", "ive", "i'd", "id", "we", "it", "it's",
             "or", "because", "just", "live", "living", "phoning", "ringing", "again", "yes", "yeah", "no"}
_CUE = re.compile(r"\b(?:my name is|my name's|my names|name is|name's|the name is|this is|it's|it is|i am|i'm|im|that's|thats|"
                  r"call me|you're speaking (?:to|with)|you are speaking (?:to|with)|message (?:[a-z']+ ){0,5}?from)\s+(?=([^\W\d_][\w'\- ]{0,80}))", re.I)
_WEAK_CUES = ("it's", "it is", "i am", "i'm", "im", "call me")  # trusted only when the word after looks like a name
_TWO_WORDS = ("that's", "thats")  # trusted only for a first name and a surname ("that's alex morgan")
TITLES = {"mr": "Mr", "mrs": "Mrs", "ms": "Ms", "miss": "Miss", "dr": "Dr", "doctor": "Dr", "mister": "Mr"}
_SOUNDS = {"c": ("ck", "k"), "k": ("c",), "y": ("i",), "i": ("y",), "z": ("s",), "s": ("z",), "f": ("ph",), "ph": ("f",)}


def _name_word(w: str, *, first: bool = True) -> bool:
    """A word that may be part of a name; a first word ending in -ing ("I'm having...") is not."""
    core = w.strip("'-")
    return (2 <= len(core) <= 30 and core.lower() not in NOT_NAME and re.fullmatch(r"[^\W\d_][\w'\-]*", core) is not None
            and not any(c.isdigit() or c == "_" for c in core)
            and not (first and len(core) >= 6 and core.lower().endswith("ing")))


def _cap(w: str) -> str:
    w = w.strip("'-").lower()
    parts = re.split(r"([-'])", w)
    return "".join(p if p in "-'" else p.capitalize() for p in parts).replace("O'", "O'")


def _spelled(words: list[str]) -> list[str]:
    """Letters spelled out join into a word: "m a r c" -> "marc"."""
    out: list[str] = []
    letters: list[str] = []
    for w in [*words, ""]:
        if len(w) == 1 and w.isalpha():
            letters.append(w)
            continue
        if len(letters) >= 2:
            out.append("".join(letters))
        elif letters:
            out.extend(letters)
        letters = []
        if w:
            out.append(w)
    return out


def _respell(name: str, text: str) -> str:
    """ "Mark with a c" -> "Marc"; "Ann with an e" -> "Anne"; "Jon without an h" kept."""
    m = re.search(r"\bwith (?:a|an) ([a-z]{1,2})\b", text.lower())
    if not m or not name:
        return name
    letter, words = m.group(1), name.split()
    first = words[0].lower()
    if letter in first:
        return name
    for old in _SOUNDS.get(letter, ()):
        i = first.rfind(old)
        if i > 0:
            words[0] = _cap(first[:i] + letter + first[i + len(old):])
            return " ".join(words)
    if letter == "e":
        words[0] = _cap(first + "e")
    return " ".join(words)


def _plain(text: str) -> str:
    """Lower-case letters and commas (for every other mark), fillers dropped."""
    low = re.sub(r"[^\w'\- ]+|[\d_]+", " , ", text[:MAX_TEXT].lower().replace("’", "'"))
    return " ".join(w for w in low.split() if w not in FILLERS)


def _take_name(words: list[str]) -> str | None:
    words = _spelled([w for w in words if w])
    title = TITLES.get(words[0].lower().rstrip(".")) if words else None
    out: list[str] = []
    for w in words[1:] if title else words:
        if w.lower() in _NAME_END or not _name_word(w, first=not out):
            break
        if out and w.lower() in ("".join(out).lower(), *(x.lower() for x in out)):  # "Davis, d a v i s"
            continue
        out.append(_cap(w))
    if title and out:
        return " ".join([title, *out[:3]])
    return " ".join(out[:4]) or None


def name_in(text: str, *, asked: bool = False) -> str | None:
    """A name the caller gave ("my name is Sarah Johnson", "this is Tom", "Mark Davis here",
    "it's Marc with a c"); with ``asked`` (the bot just asked for it) also "it's Ann" and a
    bare "John Smith". Placeholders ("yes", "the caller", "hi") are never a name."""
    low = _plain(text)
    best = None
    for m in _CUE.finditer(low):
        cue = m.group(0).strip()
        rest = m.group(1).split(",")[0].split()
        name = _take_name(rest)
        after = rest[len(name.split()):][:1] if name else []
        if cue in _TWO_WORDS and (not name or len(name.split()) < 2):
            continue
        if name and (cue not in _WEAK_CUES or asked or len(name.split()) >= 2 or after in ([], ["and"], ["from"], ["here"], ["calling"], ["in"], ["speaking"], ["at"], ["on"])):
            best = name
    if best is None:  # "... doctor ortiz speaking", "john smith here"
        here = re.search(r"((?:[^\W\d_][\w'\-]* ){1,4})(?:here|speaking)\b", low)
        words = here.group(1).split() if here else []
        k = len(words)
        while k > 0 and _name_word(words[k - 1]) and len(words) - k < 3:
            k -= 1
        if k > 0 and words[k - 1].rstrip(".") in TITLES:
            k -= 1
        if k < len(words) and (words[k].rstrip(".") in TITLES or len(words) - k <= 3):
            best = _take_name(words[k:])
    if best is None and asked:
        best = bare_name(text)
    return _respell(best, text) if best else None


def bare_name(text: str, *, whole: bool = False) -> str | None:
    """The answer to "your name?" with no phrase around it: "john smith", "yeah it's ann
    lee, thanks" -> the name; None when the words are not a name ("yes", "my sink is clogged")."""
    words = _spelled(_plain(text).split())
    lead = {"yes", "yeah", "yep", "sure", "ok", "okay", "well", "so", "hi", "hello", "hey", "it's", "its", "it", "is",
            "oh", "right", "name", "my", "that's", "thats", "sorry", "no", "nope", "actually", "wait", ","}
    while words and words[0] in lead:
        words = words[1:]
    chunk = " ".join(words).split(",")[0].split()
    name = _take_name(chunk)
    if not name:
        return None
    taken = len(name.split()) - (1 if name.split()[0] in TITLES.values() else 0)
    tail = [w for w in chunk[taken:] if w.lower() not in (x.lower() for x in name.split())]
    # what follows the name must not be more words of a sentence ("john smith" yes; "sink clogged" is no name anyway)
    if tail and tail[0] not in _NAME_END and tail[0] not in ("here", "speaking"):
        return None
    rest = [w for w in words[len(chunk) - len(tail):] if w != ","] if whole else []
    if whole and any(w not in ("thanks", "thank", "you", "please", "here", "speaking") for w in rest):
        return None  # where another answer was asked for, only the name alone is taken as one
    return name


# ---------------------------------------------------------------- units and addresses

_TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
          "seventeen": "17", "eighteen": "18", "nineteen": "19"}
_TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9"}
_UNIT_CUE = re.compile(r"\b(unit|apartment|apt|flat|suite|room|house|number|no)\.?\s+(.*)", re.I)
_IN_CUE = re.compile(r"\b(?:i'?m in|i am in|i live in|we're in|we are in|living in)\s+(.*)", re.I)


_STREET = {"road", "street", "avenue", "lane", "drive", "way", "place", "court", "close", "st", "rd", "ave", "crescent",
           "terrace", "square", "gardens", "boulevard", "blvd", "hill", "row", "walk", "park"}


def _unit_code(words: list[str]) -> tuple[str, int]:
    """Leading words that spell a unit, and how many: "twelve b" -> ("12B", 2), "two oh four" ->
    ("204", 3), "4c" -> ("4C", 1); ("", 0) for none."""
    out, n = "", 0
    for i, w in enumerate(words[:5]):
        w = w.lower().strip(",.")
        if re.fullmatch(r"\d{1,5}[a-z]?", w):
            out += w.upper()
        elif w in DIGIT_WORDS and w not in ("to", "too", "for", "o", "oh") or (w in ("o", "oh") and out):
            out += DIGIT_WORDS[w]
        elif w in _TEENS:
            out += _TEENS[w]
        elif w in _TENS:
            nxt = words[i + 1].lower() if i + 1 < len(words) else ""
            out += _TENS[w] + ("" if nxt in DIGIT_WORDS and nxt not in ("oh", "o", "to", "too", "for") else "0")
        elif len(w) == 1 and w.isalpha() and out and out[-1].isdigit():
            out, n = out + w.upper(), i + 1
            break
        elif w == "hundred" and out:
            out += "00"
        else:
            break
        n = i + 1
    return (out, n) if out and len(out) <= 6 and any(c.isdigit() for c in out) else ("", 0)


def unit_in(text: str, *, asked: bool = False) -> str:
    """The unit or address a caller gave: "I'm in unit four c" -> "Unit 4C", "apartment twelve
    b" -> "Apartment 12B", "I live in 204" -> "204"; with ``asked``, a bare "4b" or "12 harbour
    road" too. "" when none."""
    low = re.sub(r"[^\w' ]+", " ", text[:MAX_TEXT].lower().replace("’", "'"))
    if asked:
        words = re.sub(r"^(?:(?:it's|its|it is|i'm in|im in|i live at|i live in|in|at|yeah|yes|um|uh|er|the|number|no)\s+)+", "",
                       low.strip()).split()
        code, n = _unit_code(words)
        rest = words[n:]
        street = []
        for w in rest:
            street.append(w)
            if w in _STREET:
                break
        if code and street and street[-1] in _STREET and len(street) <= 4:
            return f"{code} {' '.join(street).title()}"
    m = _UNIT_CUE.search(low)
    if m and m.group(1) not in ("number", "no"):
        code, _ = _unit_code(m.group(2).split())
        if code:
            word = {"apt": "apartment"}.get(m.group(1), m.group(1))
            return f"{word.capitalize()} {code}"
    m = _IN_CUE.search(low)
    if m:
        code, _ = _unit_code(m.group(1).split())
        if code and (not code.isdigit() or len(code) >= 2):
            return code
    if asked:
        code, n = _unit_code(words)
        if code and all(w in FILLERS or w in ("please", "thanks", "thank", "you") for w in words[n:]):
            return code
    return ""
