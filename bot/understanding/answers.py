"""The caller's answer to "Is this an emergency that needs someone tonight?".

Read the way a person would: how the answer starts carries it ("no, he's eating fine,
it can wait till Monday" is a no, however many words follow; "yeah, it's pouring" a yes),
fire, gas and danger to life are always a yes, a caller who is not sure is treated as
urgent (someone should call back), and "no, but it's getting worse" is not a plain no.
``None``: not an answer (a new request; the caller is read afresh).
"""

from __future__ import annotations

from typing import Literal

from bot.language import Words
from bot.understanding import keywords

Answer = Literal["yes", "no", "unsure"]

LEAD = {"um", "uh", "erm", "er", "oh", "well", "hmm", "so", "ah", "like", "and", "but", "honestly", "actually", "okay", "ok",
        "alright", "right"}
WORSE = ("worse", "won't stop", "can't stop", "spreading", "a lot of blood", "more and more", "keeps getting", "burning", "sparking",
         "sparks")
YES_START = ("yes", "yeah", "yep", "yup", "ya", "aye", "absolutely", "definitely", "of course", "it is", "it really is",
             "i think so", "i'd say so", "i would say so", "it does", "he does", "she does", "we do", "i do", "very much",
             "please", "correct", "right", "sure is", "for sure", "urgent", "it's urgent", "it's an emergency", "yes please")
NO_START = ("no", "nope", "nah", "not really", "not tonight", "not at all", "not urgent", "not an emergency",
            "it's not", "it isn't", "i don't think so", "don't think so", "i wouldn't say", "probably not",
            "it can wait", "can wait", "it'll keep", "it will keep", "it's fine", "he's fine", "she's fine",
            "we're fine", "i'm fine", "it's okay", "it's ok", "no no", "not an emergency no")
CAN_WAIT = ("can wait", "not urgent", "not an emergency", "isn't an emergency", "no rush", "no hurry", "tomorrow is fine",
            "morning is fine", "monday is fine", "in the morning is fine", "it'll keep", "it will keep", "till tomorrow",
            "until tomorrow", "till the morning", "until the morning", "till monday", "until monday", "not tonight",
            "can come tomorrow", "come tomorrow", "tomorrow's fine", "tomorrow will do", "morning will do", "first thing is fine")
# a no said after the story ("she's still eating so no, I don't think it's an emergency")
NOT_SO = ("so no", "don't think it's an emergency", "don't think it is an emergency", "don't think it's urgent",
          "wouldn't call it an emergency", "wouldn't say it's an emergency", "not that bad", "not too bad", "not so bad",
          "not that serious", "not serious", "isn't urgent", "it's not urgent", "not an emergency as such",
          "not an emergency really", "nothing urgent", "not desperate", "not life or death", "can leave it",
          "can wait till", "fine till", "fine until", "okay till", "ok till", "ok until", "okay until")
FINE = ("we're fine", "i'm fine", "we're okay", "we're ok", "we're alright", "we're all right", "all fine")
# a message asked for as the answer
A_MESSAGE = ("take a message", "leave a message", "pass a message", "pass on a message", "message for", "message please",
             "just a message", "get a message")
# a question about the question ("what do you mean by emergency, would somebody come out now?"): asked again
WHAT_IS_MEANT = ("what do you mean", "what does that mean", "what counts as", "what's an emergency", "what is an emergency",
                 "does it count", "would that count", "does that count", "would somebody come", "would someone come",
                 "would somebody actually", "would someone actually", "do you mean")
UNSURE = ("don't know", "dunno", "not sure", "no idea", "maybe", "possibly", "hard to say", "you tell me", "i'm unsure",
          "can't tell", "couldn't tell you", "might be", "could be")


def _starts(w: Words, phrases: tuple[str, ...]) -> bool:
    words = list(w.words)
    while words and words[0] in LEAD and len(words) > 1:
        words = words[1:]
    head = " " + " ".join(words[:5]) + " "
    return any(head.startswith(f" {p} ") for p in phrases)


def emergency_answer(w: Words) -> Answer | None:
    plain_no = (_starts(w, NO_START) or w.has(*NOT_SO)) and not w.has(*WORSE)
    if w.has(*A_MESSAGE) and not w.has(*WORSE) and not keywords.danger(w):
        return "no"  # "yes please, take a message for maintenance": yes to a message, not to someone tonight
    if keywords.danger(w) and not (plain_no and w.has(*CAN_WAIT, *FINE)):  # "no, we've got the fire on, we're fine"
        return "yes"
    if w.has(*NOT_SO) and w.has(*WORSE):
        return "unsure"  # "not that bad yet, but it keeps getting bigger"
    if w.has(*CAN_WAIT, *NOT_SO):
        return "no"
    if w.has(*UNSURE) and not _starts(w, YES_START):
        return "unsure"
    if _starts(w, NO_START):
        return "unsure" if w.has(*WORSE) else "no"
    if _starts(w, YES_START) and not _starts(w, _PLEASE_DO):  # not "please call the rescue's number rather than my cell"
        return "yes"
    return None


# "please" before an instruction about the message is no yes
_PLEASE_DO = tuple(f"please {v}" for v in ("call", "ring", "phone", "text", "use", "try", "put", "take", "leave", "write", "note",
                                             "pass", "tell", "let", "can you put", "can you take", "could you take", "could you put"))


def says_it_can_wait(w: Words) -> bool:
    """Said outright, unasked: it is no emergency ("no I don't think it's an emergency, tomorrow's fine")."""
    return w.has(*CAN_WAIT, *NOT_SO) and not w.has(*WORSE) and not keywords.danger(w)
