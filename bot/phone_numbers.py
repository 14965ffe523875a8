"""Phone numbers as callers say them: "five five five, eight six seven, five three oh nine",
"oh seven seven double oh, nine double oh, one two three", pairs and tens ("twenty two,
thirty three"), "treble one", "+44 7700 900 321", "555-247-9910", "area code 312",
"extension 42", and a correction in the same breath ("3390, no wait, 3309").

At most 15 digits (E.164) including an extension: longer input is refused, never stored or
spoken. A number with an extension is kept as "6085550100 ext 42".
"""

from __future__ import annotations

import re

import phonenumbers

from bot.language import DIGIT_WORDS, FILLERS, MAX_DIGITS, MAX_TEXT, SPOKEN, TEENS, TENS

UNIT_WORDS = {"unit", "apartment", "apt", "flat", "suite", "room", "floor", "house", "building"}
_UNITS = {w: d for w, d in DIGIT_WORDS.items() if w not in ("zero", "oh", "o", "to", "too", "for")}
_RUN_GLUE = FILLERS - {"oh"} | {"and", "then", "dash", "hyphen", "plus", "area", "code", "is", "it's", "its"}
_ONE_AS_WORD = {"work", "home", "mobile", "cell", "other", "this", "that", "new", "old", "the", "my", "different",
                "landline", "which", "no", "any", "last", "right", "wrong", "a", "another", "same", "office", "best", "main",
                "usual", "better", "good", "proper", "second", "first", "only", "personal", "business", "daytime", "house"}
# a country code follows: "+44 7700 ...", "plus forty four ..." (not "five plus years")
_CODE_WORDS = "|".join(sorted({*DIGIT_WORDS, *TENS} - {"to", "too", "for", "o"}))
_PLUS = re.compile(rf"\+\s*(?=\d)|\bplus\s+(?=\d|(?:{_CODE_WORDS})\b)", re.I)
_SOFT_DIGITS = ("o", "oh", "to", "too", "for")  # digits only between other digits
# a correction, or a question ("did I say 3312? it's 3321"); a full stop between groups is how speech recognition
# often writes a breath ("five five five. one two three. four five six seven"), so it joins
_CORRECTION = re.compile(r"\b(?:no wait|wait|sorry|i mean|no|actually|correction)\b|\?")
_FIRST_AFTER_ALL = re.compile(r"\b(?:actually|no|sorry|make it|use|go with|better)\b[^.?!\d]{0,25}?\bthe (?:first|former|home|landline)"
                              r"(?: one| number| phone)?\b", re.I)
_EXTENSION = re.compile(r"\b(?:extension|ext)\b\.?", re.I)


def _digitish(tok: str) -> bool:
    return tok.isdigit() or tok in DIGIT_WORDS or tok in TEENS or tok in TENS or tok in ("double", "triple", "treble")


def _digits(tokens: list[str], i: int, cur: list[str]) -> str | None:
    """What token ``i`` adds to the group being said (digits, or "double" / "treble" before
    one); None when it is no digit here and ends the group."""
    tok, prev = tokens[i], (tokens[i - 1] if i else "")
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if tok.isdigit():
        return tok
    if tok == "one" and not cur and prev in _ONE_AS_WORD:  # "my work one, 0117...": a pronoun, not a digit
        return None
    if tok in _SOFT_DIGITS:  # "call me at 608 555 0193 to set it up": "to" is a word there
        return DIGIT_WORDS[tok] if (cur and _digitish(nxt)) or (tok in ("oh", "o") and (cur or _digitish(nxt))) else None
    if tok in DIGIT_WORDS:
        return DIGIT_WORDS[tok]
    if tok in TEENS:
        return TEENS[tok]
    if tok in TENS:
        if nxt in _UNITS:
            tokens[i + 1] = ","  # taken: "twenty two" is 22
            return TENS[tok] + _UNITS[nxt]
        return TENS[tok] + "0"
    if tok in ("double", "triple", "treble"):
        return tok
    if tok in ("hundred", "thousand") and cur and cur[-1].isdigit():
        return "00" if tok == "hundred" else "000"
    return None


FULL = 10  # digits: a whole phone number (a comma after it ends it; before, ASR commas split groups of one number)


_WHICH_DIGITS = re.compile(r"\b(?:last|first|final|middle|other|those|these|them)\s+(?:one|two|three|four|five|six|seven|[1-7])\b(?!\s+(?:oh|zero|one|two|three|four|five|six|seven|eight|nine|\d))")


def number_runs(text: str) -> list[str]:
    """Each group of digits said or written together, in order: "unit 12, my number is 555
    867 5309" -> ["12", "5558675309"]. A sentence end or any other word ends a group; the
    first group straight after "unit", "apartment" etc. is the unit, not part of a number."""
    runs: list[str] = []
    cur: list[str] = []
    after_unit = False
    spoken = _WHICH_DIGITS.sub(" , ", text[:MAX_TEXT].lower().replace("’", "'"))  # "the last four is 0129": not a 4
    tokens = re.findall(r"[a-z']+|\d+|[.?!;,:]", spoken)

    def close() -> None:
        if cur:
            s = re.sub(r"(?:double)(\d)", r"\1\1", "".join(cur))
            runs.append(re.sub(r"\D", "", re.sub(r"(?:triple|treble)(\d)", r"\1\1\1", s)))
            cur.clear()

    for i, tok in enumerate(tokens):
        if tok == ":":  # "the new one ends three eight one six: 608-555-3816": what follows is said on its own
            close()
            continue
        if tok == ",":
            if after_unit and cur:  # "flat two oh four, five five five...": the unit ends at the comma
                close()
                after_unit = False
            elif len(re.sub(r"\D", "", "".join(cur))) >= FULL:  # "0113 496 0557, 27 Holly Bank": the number was whole
                close()
            continue
        if tok.isdigit() and after_unit and not cur:
            runs.append(tok)
            after_unit = False
            continue
        said = _digits(tokens, i, cur)
        if said is not None:
            cur.append(said)
        elif not (tok in _RUN_GLUE and (cur or tok in ("plus", "area"))):
            close()
            after_unit = tok in UNIT_WORDS
    close()
    return [r for r in runs if r]


def digits_in(text: str) -> str:
    """Every digit spoken or written, in order: "five five five, 213-4467" -> "5552134467"."""
    return "".join(number_runs(text.replace(".", " ")))


def digits_of(number: str) -> str:
    return re.sub(r"\D", "", number)


def phone_in(text: str) -> tuple[str, str]:
    """The phone number in an utterance: ("5558675309", "") for one of 7 to 15 digits (the
    last such group, or the groups said together in one breath), with " ext 42" when an
    extension follows; ("", "long") when the digits are more than a phone number can have,
    ("", "short") for a few digits only, ("", "") for none. "+44" and "+1" said before it
    keep it: "+447700900721" (dialled from anywhere, whichever country the business is in)."""
    text = text[:MAX_TEXT]
    number, problem = _phone_in(text)
    main, ext, rest = number.partition(" ext ")
    if main and any(digits_in(text[m.end():]).startswith(main) for m in _PLUS.finditer(text)):
        return "+" + main + ext + rest, problem
    return number, problem


def _phone_in(text: str) -> tuple[str, str]:
    ext = _EXTENSION.search(text)
    if ext:
        main, problem = _phone_in(text[:ext.start()])
        tail = number_runs(text[ext.end():])
        if main and tail and len(digits_of(main)) + len(tail[0]) <= MAX_DIGITS:
            return f"{main} ext {tail[0]}", ""
        if main or problem:
            return main, problem
    runs = number_runs(text)
    if not runs:
        return "", ""
    runs = [_restarted(r) for r in runs]
    said = "".join(runs)
    half = len(said) // 2
    if len(said) > MAX_DIGITS and said[:half] == said[half:] and FULL <= half <= MAX_DIGITS:
        return said[:half], ""  # the number said twice over, to be sure
    if any(len(r) > MAX_DIGITS for r in runs):
        return "", "long"
    ok = [r for r in runs if len(r) >= 7]
    fixes = list(_CORRECTION.finditer(text.lower()))
    if len(ok) >= 2 and _FIRST_AFTER_ALL.search(text):  # "home is 608..., or my cell, 608... actually, the first one"
        return ok[0], ""
    if ok:
        if fixes and ok[-1] in number_runs(text[:fixes[-1].start()]):  # "..., no wait, 0156": the new ending
            tail = number_runs(text[fixes[-1].end():])
            if len(tail) == 1 and len(tail[0]) <= 4:
                return _corrected(ok[-1], tail[0], text[:fixes[-1].start()]), ""
        return _around(runs, ok[-1], text), ""
    # groups said in one breath, after the last correction: "five five five ... one two three ... four five six seven"
    last = number_runs(text[fixes[-1].end():]) if fixes else runs
    joined = "".join(last or runs)
    if 7 <= len(joined) <= MAX_DIGITS and len(last or runs) <= 4:
        return joined, ""
    return "", "long" if len("".join(runs)) > MAX_DIGITS else "short"


def _restarted(run: str) -> str:
    """A number begun, then said again from its start ("oh seven seven, hmm, oh seven seven zero
    zero nine ..."): the whole one said the second time."""
    if _whole(run) or len(run) <= FULL:
        return run
    return next((run[k:] for k in range(3, 6) if run[k:].startswith(run[:k]) and len(set(run[:k])) > 1 and _whole(run[k:])), run)


def _around(runs: list[str], number: str, text: str) -> str:
    """The last number long enough, with the groups said around it that complete it."""
    at = len(runs) - 1 - runs[::-1].index(number)
    joined = "".join(runs[at:])  # "oh one one seven four nine six ... oh one four four": the rest of it follows
    if (len(number) < FULL or not _whole(number) and _whole(joined)) and at < len(runs) - 1 and FULL <= len(joined) <= 13:
        return joined  # ... "double oh, four four, and a three"
    before = runs[at - 1] if at else ""
    if len(number) == 7 and len(before) == 3 and not re.search(rf"\b(?:{'|'.join(UNIT_WORDS)})\b", text, re.I):
        return before + number  # "five five five, hang on, let me find it, eight six oh four four one two"
    return number


def national(digits: str) -> str:
    """A number gathered in pieces, as dialled at home when it began with +44 or +1."""
    if len(digits) == 12 and digits.startswith("44"):
        return "0" + digits[2:]
    return digits[1:] if len(digits) == 11 and digits.startswith("1") and digits[1] not in "01" else digits


def _corrected(number: str, tail: str, before: str) -> str:
    """The number with its end said again: as many digits as the new end ("0155, no wait,
    0156"), or the digits of the last breath before the correction when that makes a whole
    number ("nine double oh, two... sorry, three six nine")."""
    same = number[:-len(tail)] + tail
    before = re.sub(r"(?:[\s,.;…]|\b(?:no|wait|sorry|i mean|actually|correction)\b)+$", "", before, flags=re.I)
    breath = digits_in(re.split(r"[,.;…]+", before)[-1])
    redone = number[:-len(breath)] + tail if 0 < len(breath) < len(number) else same
    if len(same) < FULL <= len(redone) <= 11:
        return redone
    # said again from where it went wrong: "... double oh six four, no sorry, six four eight"
    k = next((k for k in range(len(tail) - 1, 0, -1) if number.endswith(tail[:k])), 0)
    again = number[:-k] + tail if k else same
    if _whole(same) or _whole(again):
        return again if not _whole(same) else same
    # said again from the digit that began the group that went wrong: "... double oh four six, sorry, four seven two"
    return next((number[:-d] + tail for d in range(1, len(tail) + 1) if number[-d] == tail[0] and _whole(number[:-d] + tail)),
                same)


def _whole(d: str) -> bool:
    """A whole North American (ten digits) or UK (eleven, from 0) number."""
    return (len(d) == 10 and d[0] not in "01") or (len(d) == 11 and d[0] in "01")


def speak_number(number: str) -> str:
    """Digits in groups, as words, so any TTS reads them one by one (at most 15), and the
    extension after the word."""
    main, _, ext = number.partition(" ext ")
    d = digits_of(main)[:MAX_DIGITS]
    code = _country_code(main) if main.startswith("+") else ""
    rest = d[len(code):]
    if code == "44":  # grouped as at home, its trunk 0 not said: "seven seven zero zero, nine zero zero, ..."
        groups = _groups("0" + rest)
        groups[0] = groups[0][1:]
    elif code and code != "1":
        groups = [rest[i:i + 3] for i in range(0, len(rest), 3)]
    else:
        groups = _groups(rest)
    said = ", ".join(" ".join(SPOKEN[int(c)] for c in g) for g in groups if g)
    if code:  # "plus four four, ...": the country code first
        said = "plus " + " ".join(SPOKEN[int(c)] for c in code) + ", " + said
    if ext and digits_of(ext):
        said += ", extension " + " ".join(SPOKEN[int(c)] for c in digits_of(ext)[:MAX_DIGITS])
    return said


def _country_code(number: str) -> str:
    """The country code of "+447700900721" ("44"), by the phone-number library the console uses too."""
    try:
        return str(phonenumbers.parse(number, None).country_code or "") or digits_of(number)[:2]
    except phonenumbers.NumberParseException:
        return digits_of(number)[:2]


def _groups(d: str) -> list[str]:
    """The digits in the groups a person says them in."""
    if len(d) == 10:
        groups = [d[:3], d[3:6], d[6:]]
    elif len(d) == 11 and d.startswith("02"):  # UK: 020 7946 0018
        groups = [d[:3], d[3:7], d[7:]]
    elif len(d) == 11 and (d.startswith("011") or (d.startswith("01") and d[3] == "1")):  # 0117 496 0018, 0161 496 0018
        groups = [d[:4], d[4:7], d[7:]]
    elif len(d) > 10:  # "07700 900 123", "447 700 900 555"
        head = d[:-6]
        groups = ([head] if len(head) <= 5 else [head[i:i + 3] for i in range(0, len(head), 3)]) + [d[-6:-3], d[-3:]]
    else:
        groups = [d[:-4], d[-4:]] if len(d) > 4 else [d]
    return groups


def same_number(a: str, b: str) -> bool:
    """One number, however written: "+44 7700 900654" is "07700 900654" as dialled in the UK,
    "+1 608 555 0143" is "608 555 0143" in North America (a country code's digits without the
    "+" count too); an extension must match."""
    return bool(_written(a) & _written(b))


def _written(number: str) -> set[str]:
    main, _, ext = number.partition(" ext ")
    d, x = digits_of(main), digits_of(ext)
    forms = {d}
    if len(d) == 12 and d.startswith("44"):
        forms.add("0" + d[2:])
    if len(d) == 11 and d.startswith("1") and d[1] not in "01":
        forms.add(d[1:])
    return {f"{f}x{x}" for f in forms}

