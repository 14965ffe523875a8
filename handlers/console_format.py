"""How the console writes numbers, names and times for the owner.

Phone numbers go through phonenumbers (the Python port of Google's libphonenumber, the
lite package without geocoding data): the business's own country in its national form,
"(555) 867-5309", others international, "+44 20 7946 0123". The business's country is the
one of its transfer numbers (US/Canada when it has none). A callback number the caller
spoke has no country code and is read as the business's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers

from bot.profile import Profile

PLACEHOLDER_NAMES = {"", "the caller", "a caller", "caller", "unknown"}  # what a dialogue writes for no name
WITHHELD = {"anonymous", "restricted", "unknown", "unavailable", "private"}


@dataclass(frozen=True)
class Owner:
    """The owner's point of view: the business's zone and country."""

    zone: ZoneInfo
    country_code: int = 1

    @classmethod
    def of(cls, profile: Profile, transfer_number: str = "") -> Owner:
        cc = 1
        for raw in (transfer_number, profile.transfer.front_desk, getattr(profile.transfer, "on_call", "")):
            if raw and raw.startswith("+"):
                try:
                    cc = phonenumbers.parse(raw, None).country_code or cc
                    break
                except phonenumbers.NumberParseException:
                    continue
        return cls(profile.tz, cc)

    @property
    def zone_name(self) -> str:
        """'America/New_York (EST)': the zone and its abbreviation now."""
        abbr = datetime.now(self.zone).tzname() or ""
        name = str(self.zone.key)
        return f"{name} ({abbr})" if abbr and abbr != name and not abbr.startswith(("+", "-")) else name

    def when(self, ts: float | None, *, date: bool = True, seconds: bool = False) -> str:
        """'Sun 6 Dec 2026, 20:12' in the business's zone (``seconds``: 20:12:05)."""
        if ts is None:
            return "-"
        t = datetime.fromtimestamp(ts, self.zone)
        clock = t.strftime("%H:%M:%S" if seconds else "%H:%M")
        return f"{t:%a} {t.day} {t:%b %Y}, {clock}" if date else clock

    def stamp(self, ts: float) -> str:
        """For a spreadsheet: '2026-12-07 14:05:03' in the business's zone."""
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def phone(self, raw: str | None) -> str:
        """A caller ID or callback number as the owner reads it."""
        v = (raw or "").strip()
        low = v.lower()
        if not v:
            return "unknown number"
        if low in WITHHELD:
            return "number withheld"
        if low == "browser":
            return "softphone (browser)"
        if low.startswith(("sip:", "sips:", "client:")):
            return v.split(";", 1)[0]
        digits = re.sub(r"\D", "", v)
        if len(digits) < 5:
            return v
        try:
            n = phonenumbers.parse(v if v.startswith("+") else digits, None if v.startswith("+") else phonenumbers.region_code_for_country_code(self.country_code))
        except phonenumbers.NumberParseException:
            return v
        if not phonenumbers.is_possible_number(n):
            return ("+" if v.startswith("+") else "") + digits
        fmt = phonenumbers.PhoneNumberFormat.NATIONAL if n.country_code == self.country_code else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        return phonenumbers.format_number(n, fmt)


def length(seconds: float) -> str:
    """A call's length: '48 s', '1 min 48 s', '12 min'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    return f"{m} min {s} s" if s and m < 10 else f"{m} min"


def person(name: str | None) -> str:
    """A message's name, or "no name given" (never "the caller" as if it were one)."""
    v = (name or "").strip()
    return "no name given" if v.lower() in PLACEHOLDER_NAMES else v
