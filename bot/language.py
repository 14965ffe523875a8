"""Reading what callers say, from speech recognition: normalised words with a light
stemmer (so "parcels", "parking" and "leaking" meet "parcel", "park" and "leak"),
phrase matching on those stems, spoken digits, names, yes and no."""

from __future__ import annotations

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


def normalise(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"[^a-z0-9' ]+", " ", t)
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
        p = " " + " ".join(stem(w) for w in normalise(phrase).split()) + " "
        return int(p.strip() != "" and p in self.stems)

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


def digits_in(text: str) -> str:
    """Digits spoken or written: "five five five, 213-4467" -> "5552134467"."""
    out = []
    for tok in re.findall(r"[a-z]+|\d+", text.lower()):
        if tok.isdigit():
            out.append(tok)
        elif tok in DIGIT_WORDS and (tok not in ("o", "to", "too", "for") or out):
            out.append(DIGIT_WORDS[tok])
        elif tok in ("double", "triple"):
            out.append(tok)
    s = "".join(out)
    s = re.sub(r"double(\d)", r"\1\1", s)
    s = re.sub(r"triple(\d)", r"\1\1\1", s)
    return re.sub(r"\D", "", s)


def speak_number(number: str) -> str:
    """Digits in groups, as words, so any TTS reads them one by one."""
    d = re.sub(r"\D", "", number)
    groups = [d[:3], d[3:6], d[6:]] if len(d) == 10 else [d[:-4], d[-4:]] if len(d) > 4 else [d]
    return ", ".join(" ".join(SPOKEN[int(c)] for c in g) for g in groups if g)


_NAME_STOP = {"and", "my", "number", "phone", "calling", "from", "here", "is", "at", "on", "the", "please", "speaking", "thanks"}


def name_in(text: str) -> str | None:
    """A name the caller gave ("my name is Sarah Johnson", "this is Tom", "it's Ann")."""
    m = re.search(r"\b(?:my name is|my name's|name is|this is|it's|it is|i am|i'm|call me)\s+([a-z][a-z' -]*)", text, re.I)
    if not m:
        return None
    words = []
    for w in m.group(1).split():
        if w.lower() in _NAME_STOP:
            break
        words.append(w.strip("'").capitalize())
    return " ".join(words[:3]) or None


def bare_name(text: str) -> str:
    """The caller answered "your name?" without a phrase: the first few real words."""
    skip = {"yes", "yeah", "sure", "ok", "okay", "um", "uh", "well", "so", "hi", "hello", "it's", "its", "oh"}
    words = [w for w in normalise(text).split() if w not in skip and not w.isdigit() and w not in DIGIT_WORDS]
    out = []
    for w in words:
        if w in _NAME_STOP:
            break
        out.append(w.strip("'").capitalize())
    return " ".join(out[:3])


def caller_digits(caller: str) -> str:
    """The caller's number, if it is one (a phone number or a sip: URI with digits)."""
    user = caller.split("sip:", 1)[-1].split("@", 1)[0]
    d = re.sub(r"\D", "", user)
    return d[-10:] if len(d) >= 7 else ""
