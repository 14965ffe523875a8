"""The caller's answer to "Is this an emergency?", read as a person would: how it starts
carries it, whatever follows; danger is always a yes; not sure counts as urgent; a new
request is not an answer. And through the receptionist: a long "no, ..." takes a routine
message, never an urgent one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.conversation import Conversation
from bot.language import Words
from bot.profile import load_profile
from bot.providers.receptionist import Receptionist
from bot.understanding.answers import emergency_answer

VET = load_profile(Path(__file__).resolve().parents[1] / "examples" / "business" / "veterinary-clinic.toml")
NIGHT = datetime(2026, 12, 3, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(("said", "answer"), [
    ("no", "no"),
    ("nope", "no"),
    ("no, he's eating and he's happy, it can wait till Monday", "no"),
    ("no it doesn't hurt at all, it just looks a bit rough", "no"),
    ("um no not really, she seems alright now", "no"),
    ("I don't think so, it's just annoying", "no"),
    ("it can wait till the morning", "no"),
    ("yeah it can wait till tomorrow honestly", "no"),
    ("well it's fine for tonight", "no"),
    ("yes", "yes"),
    ("yeah, it's pouring through now", "yes"),
    ("yes please, he's in a bad way", "yes"),
    ("yes please, take a message for maintenance", "no"),  # yes to a message, not to someone tonight
    ("yes, leave a message, it's getting worse though", "yes"),  # worse: someone should see to it
    ("definitely, someone needs to come", "yes"),
    ("I think so, yeah", "yes"),
    ("I don't know, she's just lying there", "unsure"),
    ("not sure to be honest", "unsure"),
    ("no idea, I've never seen him like this", "unsure"),
    ("maybe? it's hard to say", "unsure"),
    ("no, but it's getting worse", "unsure"),
    ("no, but now I can smell gas", "yes"),  # danger: always a yes
    # a no said after the story, or in other words than "no"
    ("she's still munching her hay so no, I don't think it's an emergency", "no"),
    ("he's wagging his tail and eating, I wouldn't call it an emergency", "no"),
    ("it's not that bad really, there's a bowl under it", "no"),
    ("honestly nothing urgent, just want someone to look at it this week", "no"),
    ("we'll be fine till the morning I reckon", "no"),
    ("it's ok until monday, we've got the other bathroom", "no"),
    ("not that bad yet but it keeps getting bigger", "unsure"),
    # a fire lit for warmth is no danger; a clear no stays a no
    ("no, we've got the electric fire on and we're fine, it can wait till tomorrow", "no"),
    ("no we're alright, the gas fire on in the lounge keeps us warm", "no"),
    ("no, but there's smoke coming out of the boiler now", "yes"),
    ("oh no, there's no smoke or anything, it's just the beeping, somebody can come tomorrow", "no"),
    ("no smoke but I can smell burning from the socket", "unsure"),
    ("what time do you open tomorrow", None),  # a new request, read afresh
    ("can I speak to the vet", None),
])
def test_the_answer_is_read_from_how_it_starts(said, answer):
    assert emergency_answer(Words(said)) == answer


async def turn(desk: Receptionist, conv: Conversation, text: str) -> str:
    conv.add_user(text)
    said = [x async for x in desk.reply(conv) if isinstance(x, str)]
    reply = "".join(said)
    conv.add_assistant(reply)
    return reply


async def test_a_long_no_takes_a_routine_message():
    async def act(action) -> bool:
        return True

    desk = Receptionist(profile=VET, clock=lambda: NIGHT)
    conv = Conversation(call_id="t", caller="+15550000000", act=act)
    conv.state["receptionist"] = {"awaiting": "emergency_check", "topic": "my dog's been limping since his walk"}
    reply = await turn(desk, conv, "no, he's eating and he's happy, it can wait till Monday")
    assert "take a message" in reply
    form = conv.state["receptionist"]["form"]
    assert form["urgent"] is False and not form.get("name")


async def test_an_urgent_message_taken_unasked_is_routine_when_the_caller_says_it_can_wait():
    saved = []

    async def act(action) -> bool:
        saved.append(action.message)
        return True

    desk = Receptionist(profile=VET, clock=lambda: NIGHT)
    conv = Conversation(call_id="t", caller="+15550000000", act=act)
    conv.state["receptionist"] = {"awaiting": None, "form": None, "topic": "", "last": ""}
    conv.state["receptionist"]["awaiting"] = "emergency_check"
    conv.state["receptionist"]["topic"] = "my rabbit's teeth look long and she's dropping food"
    assert "urgent" in await turn(desk, conv, "yes I think so")  # an urgent message: nobody is on call
    reply = await turn(desk, conv, "oh actually no, I don't think it's an emergency, she's still eating her hay, tomorrow's fine")
    assert reply.startswith("Alright, I won't mark it urgent.")
    assert conv.state["receptionist"]["form"]["urgent"] is False
    reply = await turn(desk, conv, "but he's bleeding more now, it won't stop")  # worse again: not a plain no
    assert "won't mark it urgent" not in reply


async def test_the_emergency_question_met_with_a_question_is_asked_again_not_turned_into_an_offer():
    async def act(action) -> bool:
        return True

    desk = Receptionist(profile=VET, clock=lambda: NIGHT)
    conv = Conversation(call_id="t", caller="+15550000000", act=act)
    conv.state["receptionist"] = {"awaiting": "emergency_check", "topic": "my dog ate a box of raisins", "form": None, "last": ""}
    reply = await turn(desk, conv, "sorry, what?")
    assert "is this an emergency" in reply and "message" not in reply
    assert "urgent" in await turn(desk, conv, "yes")  # nobody on call at the vet's: an urgent message


@pytest.mark.parametrize("text", ["please call the shelter's number rather than my mobile, 608 555 0199",
                                  "please can you put it down as a message"])
def test_a_request_that_opens_with_please_is_no_yes(text):
    assert emergency_answer(Words(text)) != "yes"


@pytest.mark.parametrize("text", ["please", "yes please", "please hurry", "please send someone"])
def test_please_said_as_a_yes(text):
    assert emergency_answer(Words(text)) == "yes"


@pytest.mark.parametrize("text", ["please come quick", "please, my kids are freezing", "please just send someone"])
def test_please_with_what_is_wrong_is_a_yes(text):
    assert emergency_answer(Words(text)) == "yes"
