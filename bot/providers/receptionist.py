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

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bot import message_fields, message_form
from bot.conversation import Action, Conversation
from bot.hours import answer_hours
from bot.language import ASSENT, Words, caller_digits, is_no, is_yes
from bot.message_topic import request_topic
from bot.names import name_in
from bot.phone_numbers import digits_in, phone_in
from bot.profile import Profile, cached_profile
from bot.providers.kit import Edge
from bot.understanding import keywords
from bot.understanding.answers import WHAT_IS_MEANT, emergency_answer, says_it_can_wait
from bot.understanding.classify import Reading, Understanding
from bot.understanding.encoder import load_encoder

if TYPE_CHECKING:
    from bot.settings import Settings

CANT_HELP = "I can't help with that myself, but I can take a message and have the team call you back."
ANYTHING_ELSE = "Is there anything else I can help with?"
HELP = "I can tell you our opening hours or our address, answer common questions, or take a message."
DTMF = {"1": "what are your hours", "2": "what is your address", "3": "i'd like to leave a message", "9": "repeat that"}

_EDGE = Edge("llm", "receptionist", engine="receptionist")
_ABOUT = re.compile(r"\b(?:about|regarding|re)\b", re.I)  # what a call for a person is about, said with it
_NOT_AN_ANSWER = ("repeat", "hello", "identity", "out_of_scope", "unknown")  # after "is this an emergency?": asked again
UNANSWERED_URGENT = 0.8  # "is this an emergency?" answered with a name instead: urgent when the head was this sure of one
WEAK = 0.4  # ... and a message, not the on-call line, when the answer with details reads as an emergency this unsure
IN_FORM_ASK = 0.5  # a message being left: "is this an emergency?" only when the head finds it more likely than not


class Receptionist:
    name = "receptionist"

    def __init__(
        self, *, transfer_number: str = "", profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
        understanding: Understanding | None = None,
    ) -> None:
        """``transfer_number``: where a caller asking for a person goes (empty: the
        profile's front desk); ``profile``: the business (default: the bundled property
        office); ``clock``: the time now, for tests; ``understanding``: how utterances
        are read (default: by keywords until ``start`` loads the sentence encoder)."""
        self._transfer_number = transfer_number
        self.profile = profile or cached_profile()
        self._clock = clock
        self.understanding = understanding or Understanding(self.profile, None)

    @classmethod
    def from_settings(
        cls, s: Settings, *, profile: Profile | None = None, clock: Callable[[], datetime] | None = None,
    ) -> Receptionist:
        return cls(transfer_number=s.transfer_number, profile=profile or cached_profile(s.business_file), clock=clock)

    async def start(self) -> None:
        """Load the sentence encoder (once per process) and embed the exemplars; without
        the model package the receptionist reads by keywords."""
        if self.understanding.encoder is None:
            self.understanding = await asyncio.to_thread(_understanding_for, self.profile)

    async def close(self) -> None:
        return None

    def now(self) -> datetime:
        return self.profile.local(self._clock() if self._clock else None)

    async def reply(self, conversation: Conversation) -> AsyncIterator[str | Action]:
        user = next((m["content"] for m in reversed(conversation.messages) if m.get("role") == "user"), "")
        st = conversation.state.setdefault("receptionist", {"last": "", "awaiting": None, "form": None, "topic": ""})
        with _EDGE.guard():  # nothing but StageError leaves the adapter
            sentences, action = await self._respond(str(user), st, conversation)
        st["last"] = " ".join(sentences)
        for s in sentences:
            yield s + " "
        if action is not None:
            yield action

    def wants_turn(self, conversation: Conversation) -> bool:
        """For an LLM without tools: this turn needs the receptionist (a form under way,
        or the caller wants a message, a person, help in an emergency, or to leave)."""
        st = conversation.state.get("receptionist") or {}
        if st.get("form") is not None or st.get("awaiting") in ("offer_message", "emergency_check"):
            return True
        user = next((m["content"] for m in reversed(conversation.messages) if m.get("role") == "user"), "")
        w = Words(self._dtmf(str(user)))
        return (keywords.closing(w) or keywords.wants_person(w) or keywords.emergency(w, self.profile) or keywords.danger(w)
                or w.has(*keywords.MESSAGE, *keywords.STAFF_TASKS))

    async def _emergency_in_form(self, raw: str, w: Words, st: dict, conv: Conversation) -> tuple[list[str], Action | None] | None:
        """A caller who tells of an emergency while leaving a message ("what is it about?"
        "water's pouring through the ceiling") is put through to the on-call line, or the
        message becomes urgent. Names, numbers and yes/no are too short to be read."""
        form = st.get("form")
        if (not isinstance(form, dict) or form.get("urgent") or len(w.content()) < 3 or len(digits_in(raw)) >= 7
                or message_fields.details_only(raw, True)):  # "unit three oh four": a detail, nothing to read
            return None
        if keywords.danger(w):  # gas, fire, danger to life: never filed as a message
            return self._escalate_form(raw, st, conv, danger=True)
        r = await self._read(self._dtmf(raw))
        if r.intent != "emergency":
            return None
        if not r.sure:  # close to an emergency: ask, as a person would; the form waits
            if form.get("asked") in ("caller_id", "confirm"):
                return None  # after a yes-or-no question, the caller's next "yes" could answer either: the message goes on
            if form.get("asked") == "name" and name_in(raw, asked=True):
                return None  # "hang on, the cat's knocking stuff over... okay it's Bernadette Kowal": the name asked for
            if r.by == "head" and r.score < IN_FORM_ASK:
                return None  # leaving a message, "the kitchen tap keeps dripping": told as a message, filed as one
            st["form_emergency"] = raw.strip()
            return ["I'm sorry to hear that.", f"Is this an emergency that needs someone {self._when()}?"], None
        return self._escalate_form(raw, st, conv, danger=r.danger)

    async def _emergency_answer_in_form(self, raw: str, w: Words, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        """The answer to "is this an emergency?" asked in the middle of a message: yes -> the
        emergency path (not sure too); anything else -> the form goes on, with what the caller told of."""
        said = st.pop("form_emergency")
        form = st["form"]
        answer = emergency_answer(w)
        if answer in ("yes", "unsure"):
            return self._escalate_form(said, st, conv, danger=keywords.danger(w))
        if said.lower() not in (form.get("topic") or "").lower():
            form["topic"] = f"{form.get('topic') or ''} {said}".strip()
        message_form.sync(st, conv)
        if answer == "no":
            return ["Alright.", *message_form.repeat_question(form, caller_digits(conv.caller))], None
        r = await self._read(self._dtmf(raw))  # neither: "it's getting worse" is read as the emergency it tells of
        if r.intent == "emergency" or keywords.danger(w):
            return self._escalate_form(f"{said} {raw.strip()}", st, conv, danger=r.danger or keywords.danger(w))
        message_form.next_question(form, caller_digits(conv.caller))  # what the caller goes on to answer ("Tom Smith")
        return await message_form.advance(raw, w, st, conv), None

    def _escalate_form(self, raw: str, st: dict, conv: Conversation, *, danger: bool) -> tuple[list[str], Action | None]:
        form = st["form"]
        em = self.profile.emergency
        number = self.profile.transfer_number(em.transfer, self.now()) if em.transfer else ""
        if number:
            message_form.drop(st, conv)
            return self._emergency_reply(raw, st, conv, danger=danger)
        form["urgent"] = True
        form["topic"] = f"{form.get('topic') or ''} {raw.strip()}".strip()
        message_form.sync(st, conv)
        first = em.danger_say if danger else em.say or "I'm sorry to hear that."
        again = message_form.next_question(form, caller_digits(conv.caller))
        return [first, "I'll make your message urgent so someone can call you back as soon as possible.", *again], None

    async def _read(self, text: str) -> Reading:
        if self.understanding.encoder is None:
            return self.understanding.read(text)  # keywords: microseconds
        return await asyncio.to_thread(self.understanding.read, text)

    # ------------------------------------------------------------------ dialogue
    async def _respond(self, raw: str, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        text = self._dtmf(raw)
        w = Words(text)
        awaiting, st["awaiting"] = st.get("awaiting"), None
        if not w.heard and not (w.has(*ASSENT) and (awaiting or st.get("form") is not None)):  # "mhm" to a question is a yes
            st["awaiting"] = awaiting
            return [self.profile.texts.fallback], None
        if st.get("form") is not None:
            return await self._in_form(raw, w, st, conv)
        reply = self._awaited(w, st, conv, awaiting)
        if reply is not None:
            return reply
        r = await self._read(text)
        st["intent"] = r.intent
        reply = None
        unit = bool(self.profile.unit_question)
        # "Bob Stone", "Dawn Marsh, in unit 2A": details and nothing else are never asked about as an emergency
        only = r.intent == "emergency" and not r.sure and message_fields.details_only(raw, unit)
        if only and awaiting not in ("emergency_check", "offer_message"):
            return self._start_form(st, conv, ""), None
        weak = r.intent == "emergency" and not r.sure and r.score < WEAK  # "I'm the tenant's dad, my name's Robert Hale"
        if awaiting in ("emergency_check", "offer_message") and (r.intent != "emergency" or only or weak) and message_fields.gives_details(raw, unit):
            # "is it an emergency?" / "a message as well?" answered with a name, a number or an address: a message
            # (before a goodbye or a wrong number read into "go on then, I'll leave my details, it's Harpreet Sandhu")
            urgent = st.get("urgent", False) if awaiting == "offer_message" else st.get("asked_score", 0.0) >= UNANSWERED_URGENT
            topic = (message_fields.after_offer if awaiting == "offer_message" else message_fields.more_topic)(st.get("topic", ""), raw)
            reply = self._start_form(st, conv, topic, urgent=urgent), None
        if reply is None and awaiting == "emergency_check" and (r.intent in _NOT_AN_ANSWER or w.has(*WHAT_IS_MEANT)):  # "sorry?"
            st["awaiting"] = awaiting
            return [f"Sorry, I just need to check: is this an emergency that needs someone {self._when()}? Please say yes or no."], None
        reply = reply or self._urgent_or_leaving(r, raw, w, st, conv, awaiting)
        reply = reply or self._informed(r, raw, w, st, conv, awaiting)
        if reply is not None:
            return reply
        return self._unmatched(r, raw, w, st, awaiting)

    async def _in_form(self, raw: str, w: Words, st: dict, conv: Conversation) -> tuple[list[str], Action | None]:
        """A message is being taken: a goodbye, "never mind" or an emergency leave it; else the form goes on."""
        if keywords.closing(w) and not message_form.answers_question(raw, w, st):
            # "yes, that's it" where a name or address was asked: taken for the read-back; the question once more
            if is_yes(w) and not w.has("bye", "goodbye") and not st["form"].get("held"):
                st["form"]["held"] = True
            else:
                return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")  # the call keeps the form as incomplete
        if w.has(*keywords.NEVER_MIND):
            message_form.drop(st, conv)
            st["awaiting"] = "anything_else"
            return ["No problem, I won't take a message.", ANYTHING_ELSE], None
        if st.get("form_emergency"):
            return await self._emergency_answer_in_form(raw, w, st, conv)
        if st["form"].get("urgent") and says_it_can_wait(w) and not message_form.said_urgent(raw):  # "no, tomorrow's fine"
            st["form"]["urgent"] = False
            message_form.sync(st, conv)
            return ["Alright, I won't mark it urgent.", *await message_form.advance(raw, w, st, conv)], None
        escalated = await self._emergency_in_form(raw, w, st, conv)
        if escalated is not None:
            return escalated
        aside = await self._question_in_form(raw, w, st, conv)
        if aside is not None:
            return aside, None
        return await message_form.advance(raw, w, st, conv), None

    def _awaited(self, w: Words, st: dict, conv: Conversation, awaiting: str | None) -> tuple[list[str], Action | None] | None:
        """The answer to the question asked last ("is it an emergency?", "a message?", "anything else?")."""
        if awaiting == "emergency_check":
            answer = emergency_answer(w)
            if answer == "no":  # "no, it's just the hallway light, my name's Tom Reed": the details join the message
                topic = st.get("topic", "")
                if message_fields.gives_details(w.raw, bool(self.profile.unit_question)):
                    topic = message_fields.more_topic(topic, w.raw)
                form = self._start_form(st, conv, topic)
                # the caller said it can wait ("an emergency appointment" is not urgent), unless they call it urgent
                st["form"]["urgent"] = message_form.said_urgent(w.raw)
                message_form.sync(st, conv)
                return ["Alright, I'll take a message for the team, and they'll get back to you.", *form[1:]], None
            if answer is not None:  # yes, or not sure: someone should see to it now (danger: in the answer or what was told)
                danger = keywords.danger(w) or keywords.danger(Words(st.get("topic", "")))
                return self._emergency_reply(st.get("topic", ""), st, conv, danger=danger)
        if awaiting in ("offer_message", "anything_else") and w.words[-1] in ("bye", "goodbye") and not keywords.emergency(w, self.profile):
            return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")  # "good to know, I'll call in the week, bye"
        if awaiting == "offer_message" and w.has(*keywords.NO_MESSAGE) and is_no(w) and not w.has(*keywords.MESSAGE_WANTED):
            st["awaiting"] = "anything_else"  # "no, don't worry about a message, I'll ring back in the week"
            return ["No problem.", ANYTHING_ELSE], None
        if awaiting == "offer_message" and says_it_can_wait(w) and not w.has(*keywords.NO_MESSAGE):
            # "a message as well?" - "oh no, it can wait till you're open": not urgent, and the team should know
            form = self._start_form(st, conv, message_fields.after_offer(st.get("topic", ""), w.raw))
            st["form"]["urgent"] = message_form.said_urgent(w.raw)  # it can wait, unless they call it urgent now
            return ["No problem, it can wait. I'll take a message for the team.", *form[1:]], None
        # "Sure. Oh, sorry, hold on, the dog's barking...": a yes first
        first = Words(re.split(r"[.!?;]", w.raw, maxsplit=1)[0]) if awaiting == "offer_message" else w
        if awaiting == "offer_message" and is_yes(w if len(w.content()) <= 3 else first) and (
                len(w.content()) <= 3 or len(first.content()) <= 1 or message_fields.said_this_number(w.raw)):
            # "yes, the number I'm ringing from is fine"; "Okay. I need a dishwasher plumbing in": what follows is told too
            topic = st.get("topic", "") if len(w.content()) <= 3 else message_fields.after_offer(st.get("topic", ""), w.raw)
            return self._start_form(st, conv, topic, urgent=st.get("urgent", False)), None
        if awaiting in ("offer_message", "anything_else") and is_no(w) and len(w.content()) <= 1:
            if awaiting == "anything_else" or w.has("thank", "thanks", "that's all", "bye"):
                return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")
            st["awaiting"] = "anything_else"
            return ["No problem.", ANYTHING_ELSE], None
        return None

    def _urgent_or_leaving(
        self, r: Reading, raw: str, w: Words, st: dict, conv: Conversation, awaiting: str | None,
    ) -> tuple[list[str], Action | None] | None:
        """An emergency, a wish for a person, a goodbye, "say that again", a wrong number."""
        if r.intent == "emergency":
            if r.sure or awaiting == "emergency_check":
                topic = " ".join(x for x in (st.get("topic", "") if awaiting == "emergency_check" else "", raw.strip()) if x)
                return self._emergency_reply(topic, st, conv, danger=r.danger)
            st["awaiting"], st["topic"], st["asked_score"] = "emergency_check", raw.strip(), r.score
            return ["I'm sorry to hear that.", f"Is this an emergency that needs someone {self._when()}?"], None
        if r.intent == "person" or (r.intent in ("message", "task") and awaiting is None and keywords.wants_person(w)):
            return self._transfer(st, conv, raw)  # "can I talk to Gary please, he said to ring him": asked for by name
        if r.intent == "goodbye":
            return [self.profile.texts.goodbye], Action("hangup", "caller said goodbye")
        if r.intent == "repeat":
            st["awaiting"] = awaiting
            return [st.get("last") or HELP], None
        if r.intent == "wrong_number" and keywords.names_business(w, self.profile.name):  # "hello, is that Brightside Dental?": it is
            return [f"Yes, this is {self.profile.name}, and I'm the automated assistant.", "How can I help?"], None
        if r.intent == "wrong_number":
            st["awaiting"] = "anything_else"
            opener = "No, this is" if w.has("is this", "is that") else "No problem. This is"
            return [f"{opener} {self.profile.name}.",
                    "If you did mean to call us, I'm happy to help. Otherwise, take care!"], None
        return None

    def _informed(
        self, r: Reading, raw: str, w: Words, st: dict, conv: Conversation, awaiting: str | None = None,
    ) -> tuple[list[str], Action | None] | None:
        """What the receptionist knows or does: a message, the hours, the address, an FAQ, who it is."""
        if r.intent == "sales":
            st["awaiting"] = "anything_else"
            return [f"Thanks, but I can't help with sales calls, offers or surveys: I answer the phone for {self.profile.name}'s customers.",
                    "If you are one, tell me what you need. Otherwise, goodbye!"], None
        if r.intent in ("message", "task"):
            if awaiting == "offer_message":  # "a message as well?" - "no it can wait till tomorrow": about what was asked
                return self._start_form(st, conv, message_fields.after_offer(st.get("topic", ""), raw)), None
            if awaiting == "emergency_check":  # "well it's been there a couple of days, I just want someone to look": the problem told
                return self._start_form(st, conv, message_fields.more_topic(st.get("topic", ""), raw)), None
            return self._start_form(st, conv, request_topic(raw, w)), None
        if r.intent == "hours":
            return self._answered(st, answer_hours(self.profile, w, self.now())), None
        if r.intent == "address":
            return self._answered(st, f"We're at {self.profile.address}"), None
        if r.intent == "faq" and 0 <= r.faq < len(self.profile.faqs):
            answer = self.profile.faqs[r.faq].answer
            if name_in(raw) and phone_in(raw)[0]:  # "it's Gwen Price, 07700 900314, I'd like to book...": a message, all given
                return [answer, "I'll take a message for the team.", *self._start_form(st, conv, request_topic(raw, w))[1:]], None
            st["awaiting"], st["topic"], st["urgent"] = "offer_message", raw.strip(), False
            return [answer, "Would you like to leave a message as well?"], None
        if r.intent == "identity":
            opener = "Yes, this is" if keywords.names_business(w, self.profile.name) else "You've reached"
            return [f"{opener} {self.profile.name}, and I'm the automated assistant.", "How can I help?"], None
        if r.intent == "hello":  # "hello? can you hear me?": what was asked still stands
            st["awaiting"] = awaiting
            asked = {"offer_message": "Would you like to leave a message?", "anything_else": ANYTHING_ELSE,
                     "emergency_check": f"Is this an emergency that needs someone {self._when()}?"}
            return ["Yes, I'm here.", asked.get(awaiting or "", HELP)], None
        return None

    def _unmatched(self, r: Reading, raw: str, w: Words, st: dict, awaiting: str | None) -> tuple[list[str], Action | None]:
        """Nothing the receptionist does: a bare yes, else the offer of a message."""
        if awaiting == "anything_else" and is_yes(w) and len(w.content()) <= 1:
            return ["Sure, what can I help with?"], None
        if is_yes(w) and len(w.content()) <= 1 and awaiting is None:
            return ["Sure.", HELP], None
        st["awaiting"], st["topic"], st["urgent"] = "offer_message", request_topic(raw, w), False
        if r.intent == "out_of_scope":
            return [f"I'm sorry, I can't help with that: I answer the phone for {self.profile.name}.",
                    "Would you like to leave a message for the team?"], None
        return [CANT_HELP, "Would you like to leave a message?"], None

    def _when(self) -> str:
        hour = self.now().hour
        return "tonight" if hour >= 17 or hour < 5 else "right away"

    async def _question_in_form(self, raw: str, w: Words, st: dict, conv: Conversation) -> list[str] | None:
        """A question asked in the middle of a message ("before that, what time do you open
        tomorrow?") is answered, then the form's question is asked again."""
        if not message_fields.is_aside(raw, st["form"]):
            return None
        r = await self._read(self._dtmf(raw))
        if r.intent == "hours":
            answer = answer_hours(self.profile, w, self.now())
        elif r.intent == "address":
            answer = f"We're at {self.profile.address}"
        elif r.intent == "faq" and 0 <= r.faq < len(self.profile.faqs) and st["form"].get("asked") != "topic":
            answer = self.profile.faqs[r.faq].answer  # asked what the message is about, a question may be the message
            if not st["form"]["topic"] and message_fields.topic_into(st["form"], raw):  # "when can someone fix my heating?"
                message_form.sync(st, conv)
        else:
            return None
        return [answer, *message_form.repeat_question(st["form"], caller_digits(conv.caller))]

    def _dtmf(self, raw: str) -> str:
        m = re.fullmatch(r"\s*DTMF\s+(\d+)\s*", raw)
        if not m:
            return raw
        return DTMF.get(m.group(1), raw) if len(m.group(1)) == 1 else raw

    def _answered(self, st: dict, sentence: str) -> list[str]:
        st["awaiting"] = "anything_else"
        return [sentence, ANYTHING_ELSE]

    def _transfer(self, st: dict, conv: Conversation, raw: str) -> tuple[list[str], Action | None]:
        number = self._transfer_number or self.profile.transfer_number("front_desk", self.now())
        if number:
            return ["Sure, let me put you through to someone now."], Action("transfer", "caller asked for a person", "front_desk", number)
        why = "there's no one available to take your call" if self.profile.is_open(self.now()) else "the office is closed"
        about = message_fields.more_topic("", raw)  # "is Doctor Patel about, I need to talk to her about my retainer"
        return [f"I'm sorry, {why} right now, so I can't put you through. I can take a message instead.",
                *self._start_form(st, conv, about if _ABOUT.search(about) or message_fields.tells_more(about) else "")[1:]], None

    def _emergency_reply(self, topic: str, st: dict, conv: Conversation, *, danger: bool) -> tuple[list[str], Action | None]:
        em = self.profile.emergency
        first = em.danger_say if danger else em.say or "I'm sorry to hear that."
        number = self.profile.transfer_number(em.transfer, self.now()) if em.transfer else ""
        if number:
            return [first, "I'm putting you through to our on-call team now."], Action("transfer", "emergency", "emergency", number)
        form = self._start_form(st, conv, topic.strip(), urgent=True)
        return [first, "I'll take an urgent message so someone can call you back as soon as possible.", *form[1:]], None

    # ------------------------------------------------------------------ message form (bot/message_form.py)
    def _start_form(self, st: dict, conv: Conversation, topic: str, *, urgent: bool = False) -> list[str]:
        return message_form.start(st, conv, topic, urgent=urgent, unit_question=self.profile.unit_question)


_shared: dict[int, tuple[Profile, Understanding]] = {}
_shared_lock = threading.Lock()


def _understanding_for(profile: Profile) -> Understanding:
    """One per business profile and process: the exemplars are embedded once."""
    encoder = load_encoder()
    with _shared_lock:
        held = _shared.get(id(profile))
        if held is None or held[0] is not profile or held[1].encoder is not encoder:
            held = _shared[id(profile)] = (profile, Understanding(profile, encoder))
        return held[1]
