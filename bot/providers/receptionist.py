"""The embedded dialogue: a rules-based receptionist, not a language model.

It works from the business profile (bot/profile.py): opening hours (now, today,
tomorrow, a weekday, the week, holidays), the address, FAQs matched by their keywords,
emergencies, and a message form over several turns (what about, name, callback number,
confirmation). What it has no answer for gets an offer to take a message; "didn't catch
that" is only for an empty or unintelligible transcript. It acts through the same actions
as the LLM's tools: the message is committed through ``Conversation.perform`` before the
reply says it was passed on; transfer and hang-up follow the reply. Per-call state lives in
``conversation.state["receptionist"]`` (rolled back with the history when a speculative
turn is dropped); the form heard so far in ``conversation.state["pending_message"]``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import message_form
from bot.errors import UPSTREAM_ERROR, StageError
from bot.hours import day_text, hours_for, now_text, week_text
from bot.language import Words, is_no, is_yes
from bot.profile import DAYS, Profile, cached_profile
from bot.providers.base import Action, Conversation

if TYPE_CHECKING:
    from bot.settings import Settings

CANT_HELP = "I can't help with that myself, but I can take a message and have the team call you back."
ANYTHING_ELSE = "Is there anything else I can help with?"
HELP = "I can tell you our opening hours or our address, answer common questions, or take a message."
DTMF = {"1": "what are your hours", "2": "what is your address", "3": "i'd like to leave a message", "9": "repeat that"}

GOODBYE = ("bye", "goodbye", "bye bye", "that's all", "that is all", "that's it", "that's everything", "nothing else",
           "no thanks", "no thank you", "all set", "i'm good", "i'm done", "have a good day", "have a nice day",
           "have a good one", "take care", "thanks for your help", "thank you for your help", "that helps", "talk later")
THANKS_ONLY = {"thanks", "thank", "you", "ok", "okay", "great", "perfect", "cheers", "lovely", "alright", "so", "much",
               "very", "that's", "wonderful", "brilliant", "good", "got", "it", "awesome", "cool", "fine", "right", "oh", "ah",
               "for", "your", "help", "helpful", "then", "again", "anyway", "bye", "now", "a", "lot", "really", "appreciate",
               "that", "was", "all", "i", "needed", "nice", "one", "many", "ta", "well"}
PERSON = ("person", "human", "someone", "somebody", "anyone", "anybody", "agent", "operator", "representative",
          "receptionist", "manager", "staff", "a real", "the office", "the front desk", "the team", "dentist", "landlord")
REACH = ("speak to", "speak with", "talk to", "talk with", "put me through", "transfer me", "connect me", "get me",
         "get hold of", "reach", "can i speak", "could i speak", "chat with")
HOURS = ("open", "close", "closing", "hours", "what time", "opening", "business hours", "working hours", "until when",
         "how late", "how early", "are you in", "are you around")
NOW = ("now", "right now", "currently", "at the moment", "still open", "this minute", "are you open")
ADDRESS_STRONG = ("address", "located", "location", "directions", "find you", "get to you", "get there", "postcode",
                  "zip code", "what street", "which street", "how do i get", "where are you", "where's the office",
                  "where is the office", "where is your office", "where are your offices", "come in person", "visit you",
                  "bus", "train", "subway", "tube", "metro", "nearest station", "drive to you", "walk to you")
NOT_ADDRESS = ("email", "e mail", "website", "web address", "web site", "fax")
IDENTITY = ("right number", "is this", "am i speaking", "who is this", "who am i", "who's this", "have i reached", "did i reach")
PLACES = ("office", "you", "your", "building", "clinic", "practice", "surgery", "based", "shop", "store", "entrance")
MESSAGE = ("message", "call me back", "call back", "callback", "get back to me", "have someone call", "ring me back",
           "let them know", "pass on", "pass along", "contact me", "reach me", "leave a note", "call me")
STAFF_TASKS = ("appointment", "book", "booking", "reschedule", "cancel", "complaint", "quote", "invoice", "billing",
               "bill", "refund", "change my", "move my", "schedule")
REPEAT = ("repeat", "say that again", "say again", "pardon", "come again", "one more time", "didn't hear")
HERE = ("anyone there", "anybody there", "are you there", "is this a machine", "hello")
THIS_NUMBER = ("this number", "same number", "number i'm calling from", "calling from", "this one", "this phone", "the one i'm on")
NEVER_MIND = ("never mind", "nevermind", "forget it", "don't worry", "cancel that", "no message")


class Receptionist:
    name = "receptionist"

    def __init__(
        self, *, transfer_number: str = "", profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``transfer_number``: where a caller asking for a person goes (empty: the
        profile's front desk); ``profile``: the business (default: the bundled property
        office); ``clock``: the time now, for tests."""
        self._transfer_number = transfer_number
        self.profile = profile or cached_profile()
        self._clock = clock

    @classmethod
    def from_settings(
        cls, s: Settings, *, profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
    ) -> Receptionist:
        return cls(transfer_number=s.transfer_number, profile=profile or cached_profile(s.business_file), clock=clock)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    async def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        user = next((m["content"] for m in reversed(conversation.messages) if m.get("role") == "user"), "")
        st = conversation.state.setdefault("receptionist", {"last": "", "awaiting": None, "form": None, "topic": ""})
        try:
            sentences, action = await self._respond(str(user), st, conversation)
        except StageError:
            raise
        except Exception as e:  # noqa: BLE001 - nothing but StageError leaves the adapter
            raise StageError("llm", UPSTREAM_ERROR, f"receptionist failed ({type(e).__name__})", provider=self.name) from None
        st["last"] = " ".join(sentences)
        for s in sentences:
            yield s + " "
        if action is not None:
            yield action

    def wants_turn(self, conversation: Conversation) -> bool:
        """For an LLM without tools: this turn needs the receptionist (a form under way,
        or the caller wants a message, a person, help in an emergency, or to leave)."""
        st = conversation.state.get("receptionist") or {}
        if st.get("form") is not None or st.get("awaiting") == "offer_message":
            return True
        user = next((m["content"] for m in reversed(conversation.messages) if m.get("role") == "user"), "")
        w = Words(self._dtmf(str(user)))
        return self._closing(w) or self._wants_person(w) or self._emergency(w) or w.has(*MESSAGE, *STAFF_TASKS)

    # ------------------------------------------------------------------ dialogue
    async def _respond(self, raw: str, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        w = Words(self._dtmf(raw))
        awaiting, st["awaiting"] = st.get("awaiting"), None
        if not w.heard:
            st["awaiting"] = awaiting
            return [self.profile.texts.fallback], None
        if st.get("form") is not None:
            if self._closing(w) and not message_form.answers_question(raw, w, st):
                return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")  # the call keeps the form as incomplete
            if w.has(*NEVER_MIND):
                self._drop_form(st, conv)
                st["awaiting"] = "anything_else"
                return ["No problem, I won't take a message.", ANYTHING_ELSE], None
            return await self._form(raw, w, st, conv)
        if awaiting == "offer_message" and is_yes(w):
            return self._start_form(st, conv, st.get("topic", ""), urgent=st.get("urgent", False)), None
        if awaiting in ("offer_message", "anything_else") and is_no(w) and len(w.content()) <= 1:
            if awaiting == "anything_else" or w.has("thank", "thanks", "that's all", "bye"):
                return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")
            st["awaiting"] = "anything_else"
            return ["No problem.", ANYTHING_ELSE], None
        if self._emergency(w):
            return self._emergency_reply(raw, st, conv)
        if self._wants_person(w):
            return self._transfer(st, conv)
        if self._closing(w):
            return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")
        if w.has(*REPEAT):
            st["awaiting"] = awaiting
            return [st.get("last") or HELP], None
        if w.has(*MESSAGE, "change my", "update my", "move my"):
            return self._start_form(st, conv, _topic(raw, w)), None
        faq, faq_score = self._best_faq(w)
        if self._asks_hours(w) and faq_score < 2:
            return self._answered(st, self._hours(w)), None
        if self._asks_address(w) and faq_score < 2:
            return self._answered(st, f"We're at {self.profile.address}"), None
        if faq is not None:
            st["awaiting"], st["topic"], st["urgent"] = "offer_message", raw.strip(), False
            return [faq.answer, "Would you like to leave a message as well?"], None
        if w.has(*STAFF_TASKS):
            return self._start_form(st, conv, _topic(raw, w)), None
        place = Words(self.profile.address).content() - {"road", "street", "floor", "suite"}
        if w.content() & place and len(w.content()) <= 3 and not w.has(*NOT_ADDRESS):
            return self._answered(st, f"We're at {self.profile.address}"), None
        if w.has(*IDENTITY) and not w.has(*NOT_ADDRESS):
            return [f"Yes, this is {self.profile.name}.", "How can I help?"], None
        if w.has(*HERE) and len(w.content()) <= 1:
            return ["Yes, I'm here.", HELP], None
        if awaiting == "anything_else" and is_yes(w) and len(w.content()) <= 1:
            return ["Sure, what can I help with?"], None
        if is_yes(w) and len(w.content()) <= 1 and awaiting is None:
            return ["Sure.", HELP], None
        st["awaiting"], st["topic"], st["urgent"] = "offer_message", _topic(raw, w), False
        return [CANT_HELP, "Would you like to leave a message?"], None

    def _dtmf(self, raw: str) -> str:
        m = re.fullmatch(r"\s*DTMF\s+(\d+)\s*", raw)
        if not m:
            return raw
        return DTMF.get(m.group(1), raw) if len(m.group(1)) == 1 else raw

    def _answered(self, st: dict, sentence: str) -> list[str]:
        st["awaiting"] = "anything_else"
        return [sentence, ANYTHING_ELSE]

    @staticmethod
    def _closing(w: Words) -> bool:
        if w.has(*GOODBYE):
            return True
        thanks = w.has("thanks", "thank you", "cheers")
        return thanks and all(x in THANKS_ONLY for x in w.words)

    @staticmethod
    def _wants_person(w: Words) -> bool:
        if w.has("real person", "human", "operator", "representative", "live person", "speak to someone", "talk to someone"):
            return True
        return w.has(*REACH) and w.has(*PERSON)

    def _emergency(self, w: Words) -> bool:
        return bool(self.profile.emergency.keywords) and w.has(*self.profile.emergency.keywords)

    def _best_faq(self, w: Words):
        best, score = None, 0.0
        content = w.content()
        for faq in self.profile.faqs:
            s = 2.0 * sum(w.count(k) for k in faq.keywords)
            asked = Words(faq.question).content() - {"you", "we"}
            s += len(content & asked) * 0.75
            if s > score:
                best, score = faq, s
        return (best, score) if score >= 1.5 else (None, score)

    @staticmethod
    def _asks_address(w: Words) -> bool:
        if w.has(*NOT_ADDRESS):
            return False
        if w.has(*ADDRESS_STRONG):
            return True
        return w.has("where", "where's", "whereabouts") and w.has(*PLACES)

    # ------------------------------------------------------------------ hours
    def _asks_hours(self, w: Words) -> bool:
        if w.has(*HOURS):
            return True
        return w.has("when", "what time") and w.has("come in", "come by", "drop by", "drop in", "visit", "available") or w.has("holiday", "christmas")

    def _hours(self, w: Words) -> str:
        now = self.now()
        today = now.date()
        for day, reason in sorted(self.profile.closures.items()):
            if day >= today and any(x in w.content() for x in Words(reason).content() - {"day"}):
                return day_text(self.profile, day, None, today)
        if w.has("holiday", "holidays", "bank holiday") and self.profile.closures:
            upcoming = [f"{r} ({d.strftime('%B')} {d.day})" for d, r in sorted(self.profile.closures.items()) if d >= today][:3]
            return "We're closed on " + ", ".join(upcoming) + ". " + week_text(self.profile) if upcoming else week_text(self.profile)
        if w.has("tomorrow"):
            return hours_for(self.profile, "tomorrow", now)
        if w.has("today", "tonight", "this afternoon", "this morning", "this evening") and not w.has(*NOW[:-1]):
            return hours_for(self.profile, "today", now)
        if w.has("weekend"):
            sat = today + timedelta(days=(5 - today.weekday()) % 7)
            if self.profile.span_on(sat) is None and self.profile.span_on(sat + timedelta(days=1)) is None:
                nxt = self.profile.next_opening(datetime(sat.year, sat.month, sat.day, 23, 59, tzinfo=self.profile.tz) + timedelta(days=1))
                return "We're closed at the weekend." + (f" {hours_for(self.profile, DAYS[nxt.weekday()], now)}" if nxt else "")
            return day_text(self.profile, sat, None, today) + " " + day_text(self.profile, sat + timedelta(days=1), None, today)
        for name in DAYS:
            if w.has(name):
                return hours_for(self.profile, name, now)
        if w.has(*NOW) and not w.has("hours", "what time", "when do you", "when are you"):
            return now_text(self.profile, now)
        return week_text(self.profile)

    # ------------------------------------------------------------------ transfer, emergency
    def _transfer(self, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        number = self._transfer_number or self.profile.transfer_number("front_desk", self.now())
        if number:
            return ["Sure, let me put you through to someone now."], Action("transfer", "caller asked for a person", "front_desk", number)
        why = "there's no one available to take your call" if self.profile.is_open(self.now()) else "the office is closed"
        return [f"I'm sorry, {why} right now, so I can't put you through. I can take a message instead.",
                *self._start_form(st, conv, "")[1:]], None

    def _emergency_reply(self, raw: str, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        em = self.profile.emergency
        number = self.profile.transfer_number(em.transfer, self.now()) if em.transfer else ""
        if number:
            return [em.say, "I'm putting you through to our on-call team now."], Action("transfer", "emergency", "emergency", number)
        form = self._start_form(st, conv, raw.strip(), urgent=True)
        return [em.say, "I'll take an urgent message so someone can call you back as soon as possible.", *form[1:]], None

    # ------------------------------------------------------------------ message form (bot/message_form.py)
    def _start_form(self, st: dict, conv: Conversation, topic: str, *, urgent: bool = False) -> list[str]:
        return message_form.start(st, conv, topic, urgent=urgent, unit_question=self.profile.unit_question)

    def _drop_form(self, st: dict, conv: Conversation) -> None:
        message_form.drop(st, conv)

    async def _form(self, raw: str, w: Words, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        return await message_form.advance(raw, w, st, conv), None


_FILLER = re.compile(
    r"\b(hi|hello|hey|yes|yeah|please|i'd|i|would|like|want|to|can|could|may|leave|take|a|an|message|messages|for|the|just|um|uh|ok|okay)\b"
)


def _topic(raw: str, w: Words) -> str:
    """What the request is about, if the caller said more than "take a message"."""
    return raw.strip() if len(_FILLER.sub(" ", w.text).split()) >= 2 else ""
