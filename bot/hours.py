"""Opening hours as a person says them, from the business profile and a clock:
"Monday to Friday, 9 AM to 5 PM", "Monday and Tuesday", "closed on weekends", and
"are you open now?" answered from the business's local time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.language import Words
from bot.profile import DAYS, Profile, Span


def clock_text(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    if h in (0, 24) and m == 0:
        return "midnight"
    if h == 12 and m == 0:
        return "noon"
    suffix = "AM" if h < 12 or h == 24 else "PM"
    h12 = h % 12 or 12
    return f"{h12} {suffix}" if m == 0 else f"{h12}:{m:02d} {suffix}"


def span_text(span: Span) -> str:
    return f"{clock_text(span[0])} to {clock_text(span[1])}"


def day_list(days: list[str]) -> str:
    """["monday".."friday"] -> "Monday to Friday"; two -> "Monday and Tuesday";
    scattered -> "Monday, Wednesday and Friday"."""
    idx = sorted(DAYS.index(d) for d in days)
    names = [DAYS[i].capitalize() for i in idx]
    if len(idx) >= 3 and idx == list(range(idx[0], idx[0] + len(idx))):
        return f"{names[0]} to {names[-1]}"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def week_text(profile: Profile) -> str:
    """The weekly hours in one or two sentences."""
    groups: dict[Span, list[str]] = {}
    closed: list[str] = []
    for day in DAYS:
        span = profile.hours[day]
        if span is None:
            closed.append(day)
        else:
            groups.setdefault(span, []).append(day)
    if not groups:
        return "We're closed all week."
    ordered = sorted(groups.items(), key=lambda kv: DAYS.index(kv[1][0]))
    parts = [f"{day_list(days)}, {span_text(span)}" for span, days in ordered]
    out = "We're open " + "; ".join(parts) + "."
    weekend = {"saturday", "sunday"} <= set(closed)
    weekdays = [d for d in closed if not (weekend and d in ("saturday", "sunday"))]
    said = [f"{d.capitalize()}s" for d in weekdays] + (["weekends"] if weekend else [])
    if said:
        out += " We're closed on " + (", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else said[0]) + "."
    return out


def day_text(profile: Profile, day: date, label: str | None = None, today: date | None = None) -> str:
    """Hours on one date: "Tomorrow, Wednesday, we're open 9 AM to 5 PM."""
    today = today or day
    name = DAYS[day.weekday()].capitalize()
    if (day - today).days >= 7:
        name = f"{name} the {_ordinal(day.day)}"
    who = f"{label}, {name}," if label else f"On {name}"
    span = profile.span_on(day)
    if span is not None:
        return f"{who} we're open {span_text(span)}."
    why = f" for {profile.closures[day]}" if day in profile.closures else ""
    nxt = profile.next_opening(datetime(day.year, day.month, day.day, 23, 59, tzinfo=profile.tz))
    again = f" We open again {_when(nxt, today)} at {clock_text(nxt.hour * 60 + nxt.minute)}." if nxt else ""
    return f"{who} we're closed{why}.{again}"


def now_text(profile: Profile, now: datetime) -> str:
    """Are we open right now, from the clock in the business's timezone."""
    t = profile.local(now)
    span = profile.span_on(t.date())
    minute = t.hour * 60 + t.minute
    if span is not None and span[0] <= minute < span[1]:
        return f"Yes, we're open right now, until {clock_text(span[1])} today."
    nxt = profile.next_opening(t)
    if nxt is None:
        return "We're closed right now."
    return f"We're closed right now. We open again {_when(nxt, t.date())} at {clock_text(nxt.hour * 60 + nxt.minute)}."


def _when(nxt: datetime, ref: date) -> str:
    delta = (nxt.date() - ref).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "tomorrow"
    if delta < 7:
        return f"on {DAYS[nxt.weekday()].capitalize()}"
    return f"on {DAYS[nxt.weekday()].capitalize()} the {_ordinal(nxt.day)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def hours_for(profile: Profile, day: str, now: datetime) -> str:
    """``day`` as the LLM tool or a caller names it: "today", "tomorrow", "now", a
    weekday, a date "YYYY-MM-DD", or "" / "week" for the whole week."""
    d = (day or "").strip().lower()
    today = profile.local(now).date()
    if d in ("", "week", "all", "weekly", "this week"):
        return week_text(profile)
    if d in ("now", "right now", "currently"):
        return now_text(profile, now)
    if d in ("today", "tonight"):
        return day_text(profile, today, "Today", today)
    if d == "tomorrow":
        return day_text(profile, today + timedelta(days=1), "Tomorrow", today)
    for i, name in enumerate(DAYS):
        if d in (name, name + "s", name[:3]):
            return day_text(profile, today + timedelta(days=(i - today.weekday()) % 7), None, today)
    try:
        return day_text(profile, date.fromisoformat(d), None, today)
    except ValueError:
        return week_text(profile)


NOW = ("now", "right now", "currently", "at the moment", "still open", "this minute", "are you open")


def answer_hours(profile: Profile, w: Words, now: datetime) -> str:
    """The answer to a question about the hours: a closure or holiday named, tomorrow, today,
    the weekend, a weekday, whether open now, else the week."""
    today = now.date()
    for day, reason in sorted(profile.closures.items()):
        if day >= today and any(x in w.content() for x in Words(reason).content() - {"day"}):
            return day_text(profile, day, None, today)
    if w.has("holiday", "holidays", "bank holiday") and profile.closures:
        upcoming = [f"{r} ({d.strftime('%B')} {d.day})" for d, r in sorted(profile.closures.items()) if d >= today][:3]
        return "We're closed on " + ", ".join(upcoming) + ". " + week_text(profile) if upcoming else week_text(profile)
    if w.has("tomorrow"):
        return hours_for(profile, "tomorrow", now)
    if w.has("today", "tonight", "this afternoon", "this morning", "this evening") and not w.has(*NOW[:-1]):
        return hours_for(profile, "today", now)
    if w.has("weekend"):
        sat = today + timedelta(days=(5 - today.weekday()) % 7)
        if profile.span_on(sat) is None and profile.span_on(sat + timedelta(days=1)) is None:
            nxt = profile.next_opening(datetime(sat.year, sat.month, sat.day, 23, 59, tzinfo=profile.tz) + timedelta(days=1))
            return "We're closed at the weekend." + (f" {hours_for(profile, DAYS[nxt.weekday()], now)}" if nxt else "")
        return day_text(profile, sat, None, today) + " " + day_text(profile, sat + timedelta(days=1), None, today)
    for name in DAYS:
        if w.has(name):
            return hours_for(profile, name, now)
    if w.has(*NOW) and not w.has("hours", "what time", "when do you", "when are you"):
        return now_text(profile, now)
    return week_text(profile)
