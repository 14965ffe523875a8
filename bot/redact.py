"""Masking for logs: phone numbers, SIP URIs, Twilio client identities."""

from __future__ import annotations

import re


def mask_number(value: str) -> str:
    """'+14155551234' -> '+1*******34'; 'sip:+1415...@trunk.example.com;x=y' ->
    'sip:***@trunk.example.com'; 'client:bob' -> 'client:***'. Empty and
    'anonymous'-like values are kept as they are."""
    if not value:
        return value
    v = value.strip()
    low = v.lower()
    if low in ("anonymous", "restricted", "unknown", "unavailable", "private"):
        return v
    if low.startswith(("sip:", "sips:")):
        scheme, _, rest = v.partition(":")
        user, at, host = rest.partition("@")
        host = host.split(";", 1)[0]
        return f"{scheme}:***@{host}" if at else f"{scheme}:***"
    if low.startswith("client:"):
        return "client:***"
    digits = re.sub(r"\D", "", v)
    if len(digits) < 4:
        return "***"
    prefix = "+" if v.startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 3)}{digits[-2:]}"


_DIGIT_RUN = re.compile(r"\+?\d(?:[\d\s().-]*\d)?")
_DIGIT_WORD = r"(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple)"
_SPOKEN_RUN = re.compile(rf"\b{_DIGIT_WORD}(?:[\s,.-]+{_DIGIT_WORD}){{3,}}\b", re.IGNORECASE)


def transcript(text: str) -> str:
    """For LOG_TRANSCRIPTS: what a caller or the bot said, with every run of 4+ digits
    (separators allowed: '415 555 1234', '94110') and every run of 4+ spoken digits
    ('four one five five') masked. Short numbers ('2 people at 7') stay."""

    def digits(m: re.Match) -> str:
        s = m.group(0)
        return mask_number(s) if len(re.sub(r"\D", "", s)) >= 4 else s

    return _SPOKEN_RUN.sub("***", _DIGIT_RUN.sub(digits, text))
