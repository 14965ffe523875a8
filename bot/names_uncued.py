"""Names said with no cue ("my name is", "it's"...): signed ("Mark Davis here"), spelled next
to the word they spell, a piece of their own in a cased transcript ("608 555 0112, Laura
Chen, can someone call me"), or said in passing with a detail after them ("yeah go on then
its raj sandhu postcode ls17 8hx"). Used by ``bot.names`` and the message form."""

from __future__ import annotations

from bot.language import DIGIT_WORDS, NOT_NAME
from bot.name_words import (
    COMPANY,
    HARD,
    PLACE_WORDS,
    TITLES,
    Tok,
    cap,
    letters,
    namelike,
    piece,
    read_name,
    segments,
    similar,
    tokens,
)

GREETING = {"hi", "hello", "hey", "hiya", "evening", "morning", "afternoon", "good", "yeah", "yes", "oh", "right", "ok", "okay",
             "there", "sorry"}


_SIGN_CUES = {"its", "it's", "thats", "that's"}
_DETAIL = {"postcode", "post", "number", "phone", "mobile", "cell", "landline", "address", "flat", "unit", "apartment", "here",
           "speaking", "calling"}
_DETAIL_LEAD = {"in", "at", "on", "from", "the", "my"}


def _detail_at(toks: list[Tok], k: int) -> bool:
    """A detail follows at ``k``: "postcode ...", "in unit nine", "the flat is ...", "oh seven seven ..."."""
    def said(j: int) -> bool:
        t = toks[j].low if j < len(toks) else ""
        return t in _DETAIL or t.isdigit() or (t in DIGIT_WORDS and t not in ("to", "too", "for", "o", "one", "a"))
    return k < len(toks) and (said(k) or (toks[k].low in _DETAIL_LEAD and said(k + 1)))


def signed_off(text: str, *, leading: bool = False) -> str | None:
    """A name said in passing in lowercase speech, with a detail after it, where a message is
    under way ("yeah go on then its raj sandhu postcode ls17 8hx", "its jean cotton in unit
    nine"): two or three words after "its" that are no words of a request. Without a detail
    after them it is no name: "can you take a message its fence panels" (the question for the
    name is cheaper than a message from "Fence Panels"). ``leading``: also where "its" opens
    the answer (where the number was asked)."""
    toks = tokens(text)
    for i in range(len(toks) - 3, -1, -1):
        if toks[i].low not in _SIGN_CUES or 0 < i < 3 or (i == 0 and not leading):
            continue
        for k in (i + 3, i + 4):
            words = toks[i + 1:k]
            if len(words) == k - i - 1 and _detail_at(toks, k) and all(
                    namelike(t, first=n == 0, nxt="", cased=False, strict=False) and t.low not in NOT_NAME
                    and t.low not in PLACE_WORDS and t.low not in COMPANY for n, t in enumerate(words)):
                return " ".join(cap(t) for t in words)
        return None
    return None


def uncued(toks: list[Tok], cased: bool) -> list[str]:
    """A name said with no cue: signed ("Mark Davis here"), spelled, or a piece of its own."""
    return _here(toks, cased) or _spelled_out(toks, cased) or (piece_alone(toks) if cased else [])


def _here(toks: list[Tok], cased: bool) -> list[str]:
    """ "Mark Davis here", "Doctor Ortiz speaking"."""
    for i, t in enumerate(toks):
        if t.low in ("here", "speaking") and i:
            k = i
            while k > 0 and i - k < 3 and namelike(toks[k - 1], first=False, nxt="", cased=cased, strict=False):
                k -= 1
            if k > 0 and toks[k - 1].low.rstrip(".") in TITLES:
                k -= 1
            if k < i and (k == 0 or toks[k - 1].low in (",", ".") or toks[k].low.rstrip(".") in TITLES):
                words, _, _ = piece(toks[k:i], cased=cased, strict=False)
                if words and (words[0] not in TITLES.values() or len(words) > 1):
                    return words
    return []


def _spelled_out(toks: list[Tok], cased: bool) -> list[str]:
    """A name spelled without a cue, with the word it spells next to it: "her name you want I
    suppose, Eluned, E L U N E D, Eluned Price"."""
    segs = segments(toks)
    for k, seg in enumerate(segs):
        spelled = letters(seg)
        if len(spelled) < 3 or k == 0:
            continue
        prev = segs[k - 1]
        if prev and similar(prev[-1].low, spelled):
            j = len(prev) - 1  # the name-like words that end the piece before: "Aoife Kowalczyk, that's K O W..."
            while (j > max(0, len(prev) - 3) and prev[j - 1].low not in ("as", "like")
                   and namelike(prev[j - 1], first=False, nxt="", cased=cased, strict=False)):
                j -= 1
                if prev[j].low.rstrip(".") in TITLES:
                    break  # "her as Mrs Adeyemi, A D E Y E M I": the title begins it
            name, _ = read_name([prev[j:], *segs[k:]], cased=cased, strict=False)
            if name:
                return name
    return []


def piece_alone(toks: list[Tok]) -> list[str]:
    """A first name and surname said as a piece of their own, next to a number, after a
    greeting or as a sentence of its own at the end, in a cased transcript: "608 555 0112,
    Laura Chen, can someone call me", "hi, Aisha Rahman, ...", "yeah, go on then. Fatima
    Begum" (not "my wife, Helen Ward")."""
    pieces: list[list[Tok]] = [[]]
    ends = [""]  # the mark each piece follows
    for t in toks:
        if t.low in ",.?!;:":
            pieces.append([])
            ends.append(t.low)
        else:
            pieces[-1].append(t)
    last = max((k for k, part in enumerate(pieces) if part), default=0)
    for k, part in enumerate(pieces):
        by_number = any(t.low.isdigit() for t in (pieces[k - 1] if k else []) + (pieces[k + 1] if k + 1 < len(pieces) else []))
        by_number = by_number and not (k and pieces[k - 1] and pieces[k - 1][-1].low in PLACE_WORDS)  # "41 Harrogate Road, Chapel Allerton"
        greeted = k == 1 and all(t.low in GREETING for t in pieces[0])  # "hi, Aisha Rahman, I'd like somebody to..."
        signed = k == last and k > 0 and ends[k] in ".?!"  # "can you get the office to ring me? Rajesh Sharma"
        if (by_number or greeted or signed) and 2 <= len(part) <= 3 and all(
                t.orig[:1].isupper() and t.low not in HARD and t.low not in TITLES and t.low not in PLACE_WORDS for t in part):
            words, _, rest = piece(part, cased=True, strict=True)
            if len(words) == len(part) and not rest:
                return words
    return []
