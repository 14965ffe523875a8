"""What a message is about, in the caller's words: their utterance without the greeting,
the request for a message, their name and their number ("could someone call me back about
my lease, it's Mark, 555 867 5309" -> "my lease"), and said back to them ("your lease")."""

from __future__ import annotations

import re

from bot.language import MAX_TEXT, Words, is_yes
from bot.name_words import TITLES
from bot.names import name_in
from bot.phone_numbers import number_runs

TOPIC_MAX = 500  # characters of the caller's words kept as "about"
DTMF = re.compile(r"\s*DTMF\s+([0-9*#]+)\s*")

# What is not the subject of the message: greetings, "I'd like to leave a message", "call me back about".
_LEAD = re.compile(
    r"^\s*(?:(?:hi|hiya|hello|hey|yes|yeah|yep|thanks|thank you|cheers|lovely|great|perfect|good(?:\s+(?:morning|afternoon|evening|night))?|(?:morning|afternoon|evening)(?=\s*[,.])|brilliant|excellent|cool|ugh|fine|alright|"
    r"sorry to (?:bother|trouble) you(?: so late| this late| at this hour| tonight)?|um+|uh+|er+m?|oh|ok|okay|so|well|right|sure|please|good (?:morning|afternoon|evening)"
    r"|there|sorry|and|also|actually|no|just)\b[\s,.!-]*)+", re.I)
_REQUEST = re.compile(
    r"\b(?:(?:i'?d|i would|i want|i wanna|i'd like|can i|could i|may i|i need|i wanted|i was hoping)\s+(?:just\s+|only\s+)?(?:like\s+)?(?:to\s+)?"
    r"(?:leave|take|give|pass on)\s+(?:a|an|the|you a)?\s*(?:quick\s+|short\s+|urgent\s+)?message"
    r"|(?:i\s+)?(?:need|want|would like|'d like)\s+(?:someone|somebody|you|one of you|a call back|a callback)\s*(?:to\s+)?"
    r"(?:(?:call|ring|phone|get back to|contact)\s+me(?:\s+back)?)?"
    r"|(?:could|can|would)\s+(?:someone|somebody|you|one of you|anyone|the \w+)(?:\s+(?:from|in|at|on)\s+(?:the\s+)?\w+)?"
    r"\s+(?:please\s+)?(?:call|ring|phone|get back to|contact)"
    r"\s+me(?:\s+back)?|(?:please\s+)?(?:have|get|ask)\s+(?:someone|somebody|them|the \w+)\s+(?:to\s+)?(?:call|ring|phone)\s+me(?:\s+back)?"
    r"|(?:i'?m|i am)\s+(?:calling|ringing|phoning)(?:\s+to)?|(?:could|can|would)\s+you\s+(?:please\s+)?(?:pass|give|take(?:\s+down)?|write\s+down|jot\s+down)\s+"
    r"(?:a|the|my)\s+message(?:\s+(?:on|down))?(?:\s+for\s+me)?|pass\s+(?:a|the|my)\s+message\s+on|(?:the\s+message\s+is|it'?s|it is|this is|that'?s)\s+(?=about|regarding|concerning|for\b)"
    r"|^\s*(?:a\s+)?message(?:\s+please)?\b|^\s*(?:calling|ringing|phoning)(?:\s+to)?(?=\s+(?:about|regarding|to|for)\b)"
    r"|please\s+(?:call|ring)\s+me(?:\s+back)?|call\s+me\s+back|leave\s+(?:a|the)\s+message|take\s+(?:a|my)\s+message)\b[\s,.]*",
    re.I)
RECIPIENT = re.compile(
    r"^(?:for|to)\s+(?:(?:someone|somebody|anyone)\s+(?:in|at|from|on)\s+)?(?:the\s+|a\s+|your\s+)?"
    r"(?:(?:office|manager|property manager|building manager|leasing(?: office| team)?|maintenance(?: team)?|team|landlord|owner|"
    r"front desk|reception|receptionist|billing(?: department)?|accounts|dentist|doctor|practice|staff|someone|somebody|"
    r"management|super|superintendent|her|him|them|(?:dr|doctor|mr|mrs|ms|miss)\.?\s+[a-z'\-]+)\b[\s,.]*)+$", re.I)
_EMPTY = {"somebody", "someone", "anyone", "anybody", "message", "back", "callback", "quick", "short", "again", "sorry",
          "soon", "possible", "asap", "today", "tomorrow", "nothing", "else", "name", "number", "phone",
          "hang", "hold", "sec", "second", "moment", "minute", "bear", "let", "see", "right", "wait", "mean",  # "hang on... right"
          "bye", "goodbye", "goodnight", "night", "much", "cheers", "thank", "thanks",
          # when to call is not what it is about: "could somebody call me back in the morning"
          "morning", "afternoon", "evening", "tonight", "later", "week", "weekend", "first", "thing", "chance", "convenient",
          "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "earliest", "whenever"}
_ABOUT = re.compile(r"^\s*(?:about|regarding|concerning|re)\b\s*", re.I)
_NUMBER_CUE = re.compile(
    r"(?:(?:and|so|but)\s+)?(?:(?:my|the|a|our)\s+)?(?:(?:phone|callback|call back|cell|mobile|home|work|best|contact)\s+)?"
    r"(?:number|phone|cell|mobile)(?:\s+is|'s)?\s*(?:on|at)?|(?:you\s+can\s+|please\s+)?(?:reach|call|get|contact|ring|text)\s+me"
    r"(?:\s+back)?(?:\s+(?:on|at))?|\b(?:at|on)\s*$", re.I)
_TAIL_WORDS = {"and", "so", "but", "also", "please", "thanks", "thank", "you", "um", "uh"}
_FLIP = {"my": "your", "i": "you", "i'm": "you're", "im": "you're", "me": "you", "mine": "yours", "myself": "yourself",
         "i've": "you've", "i'd": "you'd", "i'll": "you'll", "am": "are", "our": "your", "we": "you", "us": "you",
         "we're": "you're", "was": "was"}


_NUM_WORD = r"(?:\d+[a-z]?|zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|" \
            r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)"
_UNIT_PHRASE = re.compile(rf"(?:\b(?:i'?m|i am|i live|we're|we live)\s+)?(?:\b(?:in|from|at)\s+)?\b(?:unit|apartment|apt|flat|suite)\s+"
                          rf"{_NUM_WORD}(?:\s+{_NUM_WORD}){{0,2}}(?:\s+[a-z]\b)?(?:[\s,]+and\b)?[\s,]*"
                          r"|\b(?:i'?m|i am|i live|we're|we live)\s+(?:in|at)\s+\d+[a-z]?\b(?:\s+and\b)?[\s,]*", re.I)



def topic_text(f: dict) -> str:
    """The topic; once the unit is a field of its own, without the words that gave it."""
    topic = f["topic"] or ""
    if f.get("unit") and topic:
        stripped = re.sub(r"^[\s,.]+|[\s,.]+$", "", _ABOUT.sub("", re.sub(r"\s+", " ", _UNIT_PHRASE.sub(" ", topic)).strip(" ,")))
        return stripped or topic
    return topic



def about_of(raw: str, *, name: str | None = None) -> str:
    """What the message is about, in the caller's words: their utterance without the
    greeting, the request for a message, their name and their number ("" if nothing is left)."""
    text = raw.strip()[:MAX_TEXT]
    if DTMF.fullmatch(text):
        return ""
    text = _drop_number(text)
    if name is None:
        name = name_in(text)
    if name:
        text = _drop_name(text, name)
    for _ in range(3):
        text = _REQUEST.sub(" ", text)
        text = _LEAD.sub("", re.sub(r"^[\s,.;:!?-]+", "", text))
        text = _ABOUT.sub("", text)
    text = re.sub(r"[,;]+([?.!])", r"\1", re.sub(r"\s+", " ", re.sub(r"\s+([,.?!])", r"\1", text)).strip())
    text = _strip_tail(text)
    text = re.sub(r"^[\s,.;:!?-]+", "", text)
    words = Words(text)
    if not words.content() - _EMPTY or mostly_digits(words):
        return ""
    if is_yes(words) and len(words.content()) <= 1:
        return ""
    return text[:TOPIC_MAX]


def _strip_tail(text: str) -> str:
    """Without trailing punctuation and trailing "and", "please", "thank you"... (linear time)."""
    words = text.split(" ")
    while words:
        last = words[-1].rstrip(" \t,.;:!-")
        if last and last.lower() not in _TAIL_WORDS:
            words[-1] = last
            break
        words.pop()
    return " ".join(words).strip()


def _drop_number(text: str) -> str:
    """The text without its phone numbers and the words that introduce them."""
    spans = []
    digit = (r"(?:\d+|zero|oh|o|one|two|to|too|three|four|for|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
             r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|double|triple|"
             r"treble|hundred|thousand|plus|dash|extension|ext)")
    for m in re.finditer(rf"(?:\+|\b){digit}(?:[\s,.()\-]*(?:{digit}|um|uh|and)\b)*", text, re.I):
        if len(re.sub(r"\D", "", "".join(number_runs(m.group(0))))) >= 5:
            spans.append((m.start(), m.end()))
    for s, e in reversed(spans):
        head = text[:s]
        cue = None
        for c in _NUMBER_CUE.finditer(head):
            if c.end() >= len(head.rstrip(" ,")) - 1:
                cue = c
        if cue is not None:
            s = cue.start()
        text = text[:s] + " " + text[e:]
    return text


def _drop_name(text: str, name: str) -> str:
    """The text without the name and how it was given ("this is Dan, Daniel Okafor", "Siobhan,
    that's S I O B H A N, Kelly", "Ann with an e"). Shorter or longer forms of a name's words
    and a name's single words are dropped only after a cue, so "annual" stays for Ann and
    "will" for Will Hunt."""
    parts = [p for p in name.split() if p.lower().rstrip(".") not in TITLES]
    if not parts:
        return text
    title = r"(?:(?:mr|mrs|ms|miss|dr|doctor|mister)\.?\s+)?"
    sep = r"[\s,]+(?:(?:um+|uh+|er+m?|well|or|sorry|no|actually)\b[\s,]+)*"  # each repeat needs a word: linear time
    forms = "|".join(rf"{re.escape(p)}|{re.escape(p[:3])}[\w'-]{{0,3}}" for p in parts)
    letters = r"(?:(?:that's|thats|spelled|spelt)\s+)?(?:(?<![\w'’-])[a-z](?![\w'’-])[\s,.]*){2,}"
    piece = rf"{title}(?:{forms})\b(?:\s+with(?:out)? an? \w\b)?|{letters}"
    cue = (r"\b(?:my first name is|first name is|my surname is|surname is|surname|last name is|my name is|my name's|my names|"
           r"name is|the name's|name's|the name is|this is|it's|its|it is|i am|i'm|im|that's|call me|from)" + sep)
    whole = title + sep.join(re.escape(p) for p in parts) + r"\b"
    tail = rf"(?:{sep}(?:{piece}))*(?:\s+(?:here|speaking))?"
    text = re.sub(rf"{cue}(?:{piece}){tail}", " ", text, count=2, flags=re.I)  # twice: "first name is John, surname Smith"
    return re.sub(rf"\b{whole}{tail}", " ", text, count=1, flags=re.I)


def flip(topic: str) -> str:
    """The caller's words as the bot says them back: "my lease" -> "your lease"."""
    words = re.sub(r"[.?!]+$", "", topic.strip()).split()
    return " ".join(_FLIP.get(x.lower(), x) if x.lower() in _FLIP else x for x in words)


def mostly_digits(w: Words) -> bool:
    """Only digits (and a filler or two): a piece of a phone number."""
    others = [x for x in w.words if x not in ("double", "triple", "treble", "hundred", "and", "it's", "its", "is", "uh", "um", "erm")
              and not x.isdigit() and x not in ("zero", "oh", "o", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")]
    return len(others) <= 1 and len(others) < len(w.words)


_REQUEST_FILLER = re.compile(
    r"\b(hi|hello|hey|yes|yeah|please|i'd|i|would|like|want|to|can|could|may|leave|take|a|an|message|messages|for|the|just|um|uh|ok|okay)\b"
)


def request_topic(raw: str, w: Words) -> str:
    """What the request is about, if the caller said more than "take a message"."""
    return raw.strip() if len(_REQUEST_FILLER.sub(" ", w.text).split()) >= 2 else ""
