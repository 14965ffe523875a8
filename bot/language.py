"""Reading what callers say, from speech recognition: normalised words with a light
stemmer (so "parcels", "parking" and "leaking" meet "parcel", "park" and "leak"), phrase
matching on those stems, yes and no, the digits of the caller's own number, a unit or address ("unit four c"), and the word lists the other readers share
(digit words, fillers, stop words, words that are never a name, the length limits).

The readers of one thing each live beside it: names in bot.names (with bot.name_words),
phone numbers (and the digits of an utterance) in bot.phone_numbers, places in bot.places."""

from __future__ import annotations

import functools
import re

DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2", "three": "3",
               "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
SPOKEN = "zero one two three four five six seven eight nine".split()
FILLERS = {"um", "uh", "erm", "er", "ah", "hmm", "mm", "mhm", "uhh", "umm", "eh", "oh", "huh", "ha", "haha", "hah", "aha", "heh"}
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


ASSENT = ("mhm", "mhmm", "mmhmm", "mm hmm", "mm hm", "uh huh", "mm", "mmm")  # fillers elsewhere; a yes where a yes or no was asked
YES = ("yes", "yeah", "yep", "yup", "aye", "yea", "yeh", "correct", "right", "sure", "please", "ok", "okay", "that's right", "it is",
       "go ahead", "please do", "that would be great", "alright", "of course", "definitely", "absolutely", *ASSENT)
NO = ("no", "nope", "nah", "wrong", "incorrect", "not really", "don't", "no thanks", "not now")


def is_yes(w: Words) -> bool:
    return w.has(*YES) and not w.has("no", "not", "nope", "wrong", "don't")


def is_no(w: Words) -> bool:
    return w.has(*NO) and not w.has("yes", "yeah", "sure")


def last_answer(w: Words) -> str | None:
    """The caller's final yes or no ("yes... no, wrong number" -> "no"); None if neither."""
    words = w.words
    for i in range(len(words) - 1, -1, -1):
        word = words[i]
        if word in ("yes", "yeah", "yep", "yup", "aye", "yea", "yeh", "correct", "right", "sure", "ok", "okay"):
            return "yes"
        if word == "wrong" and i >= 2 and words[i - 1] in ("it", "them", "that") and words[i - 2] in _GET_WRONG:
            continue  # "yes, that's right, people always spell it wrong": a remark, not a no
        if word in ("no", "nope", "nah", "wrong", "incorrect", "not"):
            return "no"
    return None


_GET_WRONG = {"spell", "spells", "spelt", "spelled", "get", "gets", "got", "say", "says", "pronounce", "write", "writes"}


MAX_DIGITS = 15  # E.164: no phone number is longer; longer input is refused, never stored or spoken
MAX_TEXT = 1000  # characters of one utterance read for names, numbers and units (a minute of speech is ~900)


def caller_digits(caller: str) -> str:
    """The caller's number, if it is one (a phone number or a sip: URI with digits): at most
    15 digits, as dialled at home for North America (+1: the ten digits) and the UK (+44:
    0 and the national number, as bot.phone_numbers reads a number said with "+44"); "" otherwise."""
    user = caller.split("sip:", 1)[-1].split("@", 1)[0]
    d = re.sub(r"\D", "", user)
    if len(d) == 11 and d.startswith("1"):
        d = d[1:]
    elif len(d) == 12 and d.startswith("44") and user.lstrip().startswith("+"):
        d = "0" + d[2:]
    return d if 7 <= len(d) <= MAX_DIGITS else ""


# Words that are never (part of) a caller's name (bot.name_words reads names with them): what
# follows "this is" / "I'm" when no name comes, placeholders, answers, and the words of requests
# and problems.
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
    pregnant expecting desperate knackered exhausted tired shattered scared frightened terrified nervous anxious upset
    gutted livid furious annoyed fed poorly unwell dizzy faint shaking shaky awake asleep alone stranded soaked
    drenched wet dry damp soggy dirty filthy smelly mouldy moldy rotten rusty dusty dark quiet loud silent empty full
    scary proper awful terrible horrible dreadful disgusting gross weird strange odd funny serious bad massive huge
    tiny small big large little tight loose wobbly sharp stiff numb itchy red raw hard soft slow fast better okay
    worries worry bother trouble nightmare disaster mess joke shambles ridiculous absurd unbelievable typical
    pouring dripping gushing spreading boiling roasting baking chilly cosy warm safe unsafe dangerous
    kinda sorta freaking panicking worrying stressing losing instead rather
    grim rubbish manky minging dodgy shocking horrendous vile rank nasty mad crazy insane wild bonkers chaos carnage
    tragic ugly leaky stinky useless hopeless broke bust busted
    kind sort cancer tumour tumor infected abscess allergic diabetic asthmatic epileptic contagious
    positive certain convinced embarrassed ashamed grateful thankful glad pleased relieved happy sad
    """.split())


# ---------------------------------------------------------------- units and addresses

# numbers said as words: "sixteen" -> "16", "twenty" -> "2" (its tens digit)
TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
          "seventeen": "17", "eighteen": "18", "nineteen": "19"}
TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9"}
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
        elif w in TEENS:
            out += TEENS[w]
        elif w in TENS:
            nxt = words[i + 1].lower() if i + 1 < len(words) else ""
            out += TENS[w] + ("" if nxt in DIGIT_WORDS and nxt not in ("oh", "o", "to", "too", "for") else "0")
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
        for k, w in enumerate(rest):
            street.append(w)
            if w in _STREET and (k + 1 == len(rest) or rest[k + 1] not in _STREET):  # "hyde park road": the last one
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
