"""Understanding callers by meaning: plainly worded emergencies reach the on-call line (or
an urgent message), the receptionist asks when it is unsure, fire and gas get the
emergency services line first, a wrong number gets a polite answer, FAQs are found by
meaning, and without the model the keyword reading still routes emergencies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.conversation import Action, Conversation
from bot.profile import ProfileError, load_profile
from bot.providers.receptionist import CANT_HELP, Receptionist
from bot.understanding.classify import Reading, Understanding, taken_back, told_after

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "business"
PROPERTY = load_profile(EXAMPLES / "property-office.toml")
DENTAL = load_profile(EXAMPLES / "dental-practice.toml")
VET = load_profile(EXAMPLES / "veterinary-clinic.toml")
NIGHT = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)  # 21:30 in New York, 20:30 in Chicago, 02:30 in London


@pytest.fixture(scope="session")
def readers(encoder):
    return {p.name: Understanding(p, encoder) for p in (PROPERTY, DENTAL, VET)}


def desk(profile, understanding=None) -> Receptionist:
    return Receptionist(profile=profile, clock=lambda: NIGHT, understanding=understanding)


async def say(r: Receptionist, conv: Conversation, text: str) -> tuple[str, list[Action]]:
    conv.add_user(text)
    words, actions = [], []
    async for item in r.reply(conv):
        (actions if isinstance(item, Action) else words).append(item)
    reply = "".join(words).strip()
    conv.add_assistant(reply)
    return reply, actions


def call(saved: list | None = None) -> Conversation:
    async def act(action: Action) -> bool:
        if saved is not None:
            saved.append(action)
        return True

    return Conversation(call_id="CA1", caller="+15550001111", act=act)


@pytest.mark.parametrize("text", [
    "There's water pouring through my bathroom ceiling from the apartment upstairs.",
    "a pipe just burst under the kitchen sink and the floor is soaked",
    "my mum is stuck in the lift",
    "the front door lock is broken and I can't lock my apartment tonight",
])
async def test_plainly_worded_emergencies_go_to_the_on_call_line(readers, text):
    r = desk(PROPERTY, readers[PROPERTY.name])
    conv = call()
    reply, actions = await say(r, conv, text)
    if "Is this an emergency" in reply:  # allowed: asked first, then yes
        reply, actions = await say(r, conv, "yes")
    assert [(a.kind, a.purpose, a.number) for a in actions] == [("transfer", "emergency", PROPERTY.transfer.on_call)]
    assert "on-call" in reply


async def test_an_emergency_with_no_on_call_line_takes_an_urgent_message(readers):
    saved: list[Action] = []
    r = desk(VET, readers[VET.name])
    conv = call(saved)
    reply, actions = await say(r, conv, "our dog just got hit by a car and he can't get up")
    assert actions == [] and "Lakeside 24-hour Animal Hospital" in reply and "urgent message" in reply
    await say(r, conv, "Karen Miller")
    await say(r, conv, "608 555 0111")
    await say(r, conv, "yes")
    [msg] = [a.message for a in saved if a.kind == "take_message"]
    assert msg is not None and msg.urgent and "car" in msg.about and msg.callback_number == "6085550111"


@pytest.mark.parametrize("text, number", [("I can smell gas in the hallway", "911"), ("there's smoke coming out of the laundry room", "911")])
async def test_fire_and_gas_get_the_emergency_services_line_first(readers, text, number):
    r = desk(PROPERTY, readers[PROPERTY.name])
    reply, actions = await say(r, call(), text)
    assert reply.startswith("If anyone is in danger") and f"call {number}" in reply
    assert actions[0].purpose == "emergency"


async def test_the_dental_practice_says_999_for_danger_to_life(readers):
    reply, actions = await say(desk(DENTAL, readers[DENTAL.name]), call(), "my face is so swollen I can't breathe properly")
    assert "call 999" in reply and actions[0].purpose == "emergency"


class Unsure(Understanding):
    """Reads every utterance as maybe an emergency (the receptionist's ask path)."""

    def read(self, raw: str) -> Reading:
        return Reading("emergency", sure=False, score=0.5, by="meaning")


async def test_unsure_asks_and_yes_puts_the_caller_through():
    r = desk(PROPERTY, Unsure(PROPERTY, None))
    conv = call()
    reply, actions = await say(r, conv, "the heating is making a weird noise")
    assert reply.endswith("Is this an emergency that needs someone tonight?") and actions == []
    reply, actions = await say(r, conv, "yes")
    assert actions and actions[0].purpose == "emergency"


async def test_unsure_and_no_takes_a_normal_message():
    saved: list[Action] = []
    r = desk(PROPERTY, Unsure(PROPERTY, None))
    conv = call(saved)
    await say(r, conv, "the heating is making a weird noise")
    reply, actions = await say(r, conv, "no, it can wait till the morning")
    assert actions == [] and "take a message" in reply
    assert conv.state["pending_message"]["urgent"] is False and "heating" in conv.state["pending_message"]["about"]


async def test_a_wrong_number_gets_a_polite_answer(readers):
    for reader in (readers[PROPERTY.name], None):  # by meaning, and by keywords
        reply, actions = await say(desk(PROPERTY, reader), call(), "Oh, sorry, I think I dialed the wrong number.")
        assert "Maple Street" in reply and CANT_HELP not in reply and actions == []


@pytest.mark.parametrize("profile, text, faq", [
    (PROPERTY, "is it alright if I get a puppy", 4),
    (PROPERTY, "where are the parcels kept when I'm not home", 0),
    (DENTAL, "we've just moved to the area, can we join your practice", 1),
    (VET, "my kitten needs her jabs", 0),
])
async def test_faqs_are_found_by_meaning(readers, profile, text, faq):
    reply, _ = await say(desk(profile, readers[profile.name]), call(), text)
    assert reply.startswith(profile.faqs[faq].answer)


async def test_a_leak_through_the_ceiling_is_not_the_leasing_answer(readers):
    reply, _ = await say(desk(PROPERTY, readers[PROPERTY.name]), call(), "There's water coming through my ceiling from the apartment upstairs")
    assert PROPERTY.faqs[3].answer not in reply


async def test_without_the_model_keywords_still_route_emergencies_and_danger():
    r = desk(PROPERTY)  # never started: keyword reading
    assert r.understanding.encoder is None
    reply, actions = await say(r, call(), "there's a burst pipe in my kitchen")
    assert actions and actions[0].purpose == "emergency"
    reply, actions = await say(desk(PROPERTY), call(), "I smell gas")
    assert "call 911" in reply and actions[0].purpose == "emergency"


async def test_start_loads_the_shared_encoder_once(encoder):
    a, b = desk(VET), desk(VET)
    await a.start()
    await b.start()
    assert a.understanding is b.understanding and a.understanding.encoder is encoder


def test_the_business_file_describes_faqs_and_emergencies_in_sentences(tmp_path):
    assert "my dog ate chocolate" in VET.emergency.situations
    assert VET.faqs[0].examples and VET.emergency.transfer == ""
    f = tmp_path / "b.toml"
    f.write_text('name = "X"\ntimezone = "Europe/Paris"\naddress = "1 Rue"\n[hours]\nmonday = "09:00-17:00"\n'
                 '[emergency]\nsituations = ["the boiler is leaking"]\nsay = "Sorry."\n'
                 '[[faqs]]\nquestion = "Do you deliver?"\nanswer = "Yes."\n')
    p = load_profile(f)
    assert p.faqs[0].keywords == () and "call 112" in p.emergency.danger_say
    f.write_text('name = "X"\ntimezone = "UTC"\naddress = "1 Rue"\n[hours]\n[emergency]\nsituations = "fire"\n'
                 '[[faqs]]\nanswer = "Yes."\nexamples = [3]\n')
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    msg = str(e.value)
    assert "emergency.situations: expected a list of sentences" in msg and "faqs[0].examples" in msg


async def test_a_pets_breathing_is_the_vets_emergency_a_persons_is_911(readers):
    reply, _ = await say(desk(VET, readers[VET.name]), call(), "I think my dog is choking, he's gagging")
    assert "911" not in reply and "Lakeside 24-hour Animal Hospital" in reply
    reply, _ = await say(desk(VET, readers[VET.name]), call(), "the dog bit my husband and he's bleeding heavily and feels faint")
    assert reply.startswith("If anyone is in danger") and "call 911" in reply


async def test_an_emergency_told_while_leaving_a_message_is_not_filed_as_a_normal_message(readers):
    r = desk(PROPERTY, readers[PROPERTY.name])
    conv = call()
    await say(r, conv, "I'd like to leave a message")
    reply, actions = await say(r, conv, "there's water pouring through my kitchen ceiling right now")
    assert actions and actions[0].purpose == "emergency"
    saved: list[Action] = []
    r = desk(VET, readers[VET.name])
    conv = call(saved)
    await say(r, conv, "can I leave a message for the vet")
    reply, _ = await say(r, conv, "my dog just got into the rat poison in the shed")
    assert "urgent" in reply and reply.endswith("May I have your name?")
    for line in ("Jo Banks", "608 555 0122", "yes"):
        await say(r, conv, line)
    [msg] = [a.message for a in saved if a.kind == "take_message"]
    assert msg is not None and msg.urgent and "rat poison" in msg.about


@pytest.mark.parametrize("text", ["how do I test my smoke alarm", "do you have a fire exit plan", "my gas bill is really high",
                                  "can I smoke on the balcony", "the smoke detector is chirping, it needs a new battery"])
async def test_questions_about_fire_or_gas_are_not_taken_for_emergencies(readers, text):
    reply, actions = await say(desk(PROPERTY, readers[PROPERTY.name]), call(), text)
    assert actions == [] and "911" not in reply


# ------------------------------------------------------------------ FAQ or staff task, calm reports, the LLM chain


@pytest.mark.parametrize(("profile", "text"), [
    (DENTAL, "could I get a check-up booked for my son after school sometime"),  # the children FAQ mentions check-ups
    (VET, "I need to reschedule the check-up for my dog, the one on thursday"),  # the price FAQ is about check-ups
])
async def test_a_staff_task_takes_a_message_not_a_near_faq(readers, profile, text):
    reply, _ = await say(desk(profile, readers[profile.name]), call(), text)
    assert not any(f.answer in reply for f in profile.faqs)
    assert "name" in reply.lower()  # the message form's first question


async def test_a_faq_about_that_very_task_still_answers(readers):
    r = readers[DENTAL.name].read("can I book in to get my teeth cleaned by the hygienist")
    assert (r.intent, r.faq) == ("faq", 3)  # "Can I book a hygienist or cleaning?" is about booking


async def test_a_calm_request_for_a_callback_is_not_asked_about_an_emergency(readers):
    reply, _ = await say(desk(VET, readers[VET.name]), call(),
                         "my dog's had a slight limp for a few days, he's otherwise fine, could someone call me back")
    assert "emergency" not in reply.lower()
    assert "name" in reply.lower()


async def test_said_calmly_does_not_hide_an_urgent_one(readers):
    r = readers[PROPERTY.name].read("not urgent I guess but water is pouring everywhere from the ceiling right now")
    assert r.intent == "emergency"


async def test_the_receptionist_in_an_llm_chain_is_started_and_shared(encoder, tmp_path):
    from bot.providers.failover import FailoverLLM
    from bot.providers.openai_llm import OpenAILLM
    from bot.providers.registry import build
    from bot.settings import Settings

    env = {"TWILIO_VALIDATE": "false", "LLM_PROVIDER": "openai,receptionist", "OPENAI_API_KEY": "k",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "BUSINESS_FILE": str(EXAMPLES / "property-office.toml")}
    chain = build(Settings.from_env(env)).llm
    assert isinstance(chain, FailoverLLM)
    openai, desk_member = chain.members
    assert isinstance(openai, OpenAILLM) and isinstance(desk_member, Receptionist)
    await chain.start()
    try:
        assert desk_member.understanding.encoder is encoder  # loaded at start-up, like the embedded default
        assert openai.takeover.receptionist is desk_member  # the adapter's message-form turns read by meaning too
    finally:
        await chain.close()


async def test_the_openai_only_adapters_own_receptionist_is_started(encoder):
    """LLM_PROVIDER=openai alone: the receptionist it falls back on (message forms, a
    failed server) reads by meaning, not by keywords only."""
    from bot.providers.openai_llm import OpenAILLM
    from bot.providers.registry import build
    from bot.settings import Settings

    env = {"TWILIO_VALIDATE": "false", "LLM_PROVIDER": "openai", "OPENAI_API_KEY": "k",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "BUSINESS_FILE": str(EXAMPLES / "property-office.toml")}
    llm = build(Settings.from_env(env)).llm
    assert isinstance(llm, OpenAILLM)
    await llm.start()
    try:
        fallback = llm.takeover.receptionist
        assert fallback.understanding.encoder is encoder
        assert fallback.understanding.read("my ceiling is sagging with water and dripping fast").intent == "emergency"
    finally:
        await llm.close()


def test_a_run_ons_clauses_come_from_one_run_of_the_model(encoder):
    text = "I was calling about my rent and also water is pouring through the kitchen ceiling"
    part, elsewhere = "water is pouring through the kitchen ceiling", "my parking permit expired"
    whole, (pooled, own) = encoder.embed_parts(text, [part, elsewhere])
    assert float(whole @ encoder.embed(text)) > 0.999  # the whole utterance's vector is the usual one
    assert float(own @ encoder.embed(elsewhere)) > 0.999  # a part not in the text gets its own run
    assert float(pooled @ encoder.embed(part)) > float(pooled @ encoder.embed("how do I pay my rent")) + 0.1
    again = encoder.embed_parts(text, [part, elsewhere])  # cached: the same vectors, no second run
    assert float(again[1][0] @ pooled) > 0.999


def test_an_faq_keyword_said_in_another_form_still_counts():
    from bot.language import Words
    from bot.understanding import keywords

    faq, score = keywords.best_faq(Words("my puppy has to get vaccinated soon"), VET.faqs)  # keyword: vaccination
    assert faq == 0 and score >= 2.0
    assert keywords.best_faq(Words("my puppy has to get vacuumed"), VET.faqs)[0] != 0  # a shared short start is not one word


# ------------------------------------------------------------------ speech-recognition text, after-hours near misses


def test_contractions_written_without_the_apostrophe_read_as_contractions():
    from bot.language import Words

    w = Words("it doesnt hurt and the tap wont stop theres water")
    assert w.has("doesn't hurt") and w.has("won't stop") and w.has("there's water")
    assert Words("its collar").text == " its collar "  # a word of its own stays as it is


@pytest.mark.parametrize(("profile", "text"), [
    (DENTAL, "a bit of my back tooth broke off it doesnt hurt I just want it looked at sometime"),
    (VET, "my kitten was sick just once after dinner but shes eating and playing"),
])
async def test_a_reassured_report_without_punctuation_is_not_put_through(readers, profile, text):
    r = readers[profile.name].read(text)
    assert not (r.intent == "emergency" and r.sure) and not r.danger  # at most asked about


@pytest.mark.parametrize("text", ["the dog is eating the slug pellets he found in the shed",
                                  "our old collie is lying in the yard and wont get up"])
async def test_a_pet_eating_something_or_not_getting_up_is_at_least_asked_about(readers, text):
    assert readers[VET.name].read(text).intent == "emergency"


async def test_a_child_bleeding_a_lot_gets_the_emergency_services_line(readers):
    assert readers[VET.name].read("our dog went for my little girl and shes bleeding a lot").danger


@pytest.mark.parametrize("text", ["my grandad is holding his chest and has gone all grey and clammy",
                                  "mums face has dropped on one side and she cant talk properly",
                                  "the garage is burning down"])
async def test_danger_to_life_told_by_what_the_caller_sees_gets_the_emergency_services_line(readers, text):
    assert readers[PROPERTY.name].read(text).danger


class _SureHead:
    """A head that reads everything as an emergency it is sure of (not danger)."""

    def decide(self, ev, rule):
        return Reading("emergency", sure=True, score=0.95, by="head")


@pytest.mark.parametrize(("text", "sure"), [
    ("my crown came off at tea, it doesn't hurt though", False),  # said calm
    ("the waste pipe drips a bit, could someone call me back", False),  # a call back asked for, no urgency
    ("could someone call me back, water is pouring through the ceiling right now", True),  # asked for, but urgent
    ("water is pouring through the ceiling", True),
])
def test_a_caller_who_says_it_is_calm_or_asks_for_a_call_back_is_asked_never_put_through_unasked(encoder, text, sure):
    u = Understanding(PROPERTY, encoder)
    u.head = _SureHead()
    r = u.read(text)
    assert r.intent == "emergency" and r.sure is sure


class _MessageHead:
    """A head that reads everything as a routine message."""

    def decide(self, ev, rule):
        return Reading("message", score=0.9, by="head", emergency_score=0.01)


@pytest.mark.parametrize(("text", "intent"), [
    ("not urgent I guess but the water is pouring everywhere right now", "emergency"),  # two signs of urgency: asked
    ("the water is pouring in the bathroom", "message"),  # one is the head's call
])
def test_two_signs_of_urgency_are_asked_about_whatever_the_head_reads(encoder, text, intent):
    u = Understanding(PROPERTY, encoder)
    u.head = _MessageHead()
    r = u.read(text)
    assert r.intent == intent and (intent != "emergency" or not r.sure)


@pytest.mark.parametrize(("text", "tails"), [
    ("what time do you open in the morning, there's water coming out from under the kitchen units",
     ["the morning, there's water coming out from under the kitchen units", "there's water coming out from under the kitchen units"]),
    ("can i leave a message for the vet my dog's been vomiting blood",
     ["the vet my dog's been vomiting blood", "my dog's been vomiting blood"]),
    ("my dog's been vomiting blood since this morning", []),  # no request first: read whole, as ever
    ("can i leave a message", []),  # too short to hold a second thing
])
def test_what_a_caller_tells_after_a_request_is_found(text, tails):
    assert told_after(text) == tails


class _TailHead:
    """A head that reads the whole as a routine message and finds an emergency only in
    words about blood."""

    def decide(self, ev, rule):
        return Reading("message", score=0.9, by="head", emergency_score=0.01)

    def emergency(self, ev, rule):
        return 0.99 if "blood" in ev.raw else 0.01


@pytest.mark.parametrize(("text", "intent"), [
    ("can i leave a message for the vet my dog's been vomiting blood", "emergency"),  # the request first, the emergency after
    ("can i leave a message for the vet my dog needs his booster", "message"),
    ("can i leave a message, it's not urgent, the cut has stopped, no blood now", "message"),  # said calm: not asked
])
def test_an_emergency_told_after_a_request_is_asked_about(encoder, text, intent):
    u = Understanding(VET, encoder)
    u.head = _TailHead()
    r = u.read(text)
    assert r.intent == intent and not r.sure if intent == "emergency" else r.intent == intent


@pytest.mark.parametrize(("text", "rest"), [
    ("what time do you open tomorrow actually no forget that water's coming through my ceiling right now",
     "water's coming through my ceiling right now"),
    ("when do you open tomorrow actually no scrap that a pipe's just burst under the bath", "a pipe's just burst under the bath"),
    ("what are your hours, no wait, my cat just started having a fit", "my cat just started having a fit"),
    ("my dog has a cough and no wait", None),  # nothing after it
    ("no, I'm fine thanks", None),
    ("can someone ring me on oh seven seven oh oh nine oh oh four one six no sorry four one nine", None),  # a number put right
    ("you can reach me on 555 204... no sorry, 555 205 7781.", None),
    ("when do you close, oh wait no, my dog has just been hit by a car", "my dog has just been hit by a car"),
    ("can I book a service actually hang on no there is smoke coming from the boiler", "there is smoke coming from the boiler"),
])
def test_what_the_caller_says_after_taking_back_their_first_words(text, rest):
    assert taken_back(text) == rest


def test_a_danger_said_is_never_taken_back(encoder):
    u = Understanding(PROPERTY, encoder)
    r = u.read("I can smell gas in the hallway, actually no wait, can I just ask about parking permits")
    assert r.intent == "emergency" and r.danger


@pytest.mark.parametrize(("text", "danger"), [
    ("My dog got into the rat poison in the garage, and I think my two-year-old might have eaten some too.", True),
    ("the dog chewed open my heart pills and I don't know if my little boy got any too", True),
    ("my daughter might have swallowed some of the rat bait", True),
    ("my 3 year old got hold of the dogs tablets and ate some", True),
    ("the kids may have eaten the slug pellets", True),
    ("my dog ate my ibuprofen tablets", False),  # the pet only: an emergency, no 911
    ("my toddler dropped a grape and the dog ate it", False),
])
def test_a_child_who_may_have_swallowed_a_poison_is_a_danger(text, danger):
    from bot.language import Words
    from bot.understanding import keywords

    assert keywords.danger(Words(text)) is danger


@pytest.mark.parametrize(("text", "asked_for"), [
    ("now then, is Mick about? it's Gaz from the merchants", True),
    ("hi, is Dr Okafor still there? she said she'd look at my x-rays", True),
    ("is Carol in", True),
    ("is anyone there", False),
    ("is the heating on in the building", False),
    ("is it in the portal", False),
    ("can I talk to Gary please, he came to look at our boiler", True),
    ("can I talk to you about my rent", False),
    ("hi, is Tuesday available for a viewing", False),  # a day, not a person
    ("is internet back on yet", False),
    ("is parking available", False),
])
def test_someone_asked_for_by_name_is_a_person(text, asked_for):
    from bot.language import Words
    from bot.understanding import keywords

    assert keywords.wants_person(Words(text)) is asked_for


class _WrongNumberHead:
    """A head that reads everything as a wrong number."""

    def decide(self, ev, rule):
        return Reading("wrong_number", score=0.6, by="head", emergency_score=0.0)

    def emergency(self, ev, rule):
        return 0.0


def test_someone_asked_for_by_name_is_a_person_whatever_the_head_reads(encoder):
    u = Understanding(PROPERTY, encoder)
    u.head = _WrongNumberHead()
    assert u.read("now then, is Mick about? it's Gaz from the merchants").intent == "person"
    assert u.read("is that Leeds City Council?").intent == "wrong_number"


def test_a_wrong_number_said_outright_is_one_even_naming_who_they_wanted():
    from bot.language import Words
    from bot.understanding import keywords

    said = Words("Oh, I think I've dialled the wrong number, I was trying to reach my doctor's surgery.")
    assert keywords.intent(said, PROPERTY)[0] == "wrong_number"


def test_a_name_that_sounds_like_a_goodbye_is_no_goodbye():
    from bot.language import Words
    from bot.understanding import keywords

    assert not keywords.closing(Words("hi this is Tara Jones, calling about my boiler"))
    assert keywords.closing(Words("nah, I'll catch him in the morning. cheers, ta-ra"))


@pytest.mark.parametrize(("text", "danger"), [
    ("the sockets in the bathroom stopped working, no sparks or burning smell or anything", False),  # said to be absent
    ("no sparks, no smoke, just no power in the kitchen", False),
    ("no heat and a gas smell in the kitchen", True),  # the danger after "and" is said
    ("without power and smoke everywhere", True),
    ("never seen this much smoke coming from the boiler", True),
    ("no, there's a burning smell from the socket", True),  # "no" as an answer
])
def test_a_danger_said_to_be_absent_is_none(text, danger):
    from bot.language import Words
    from bot.understanding import keywords
    assert keywords.danger(Words(text)) is danger


@pytest.mark.parametrize(("text", "denied"), [
    ("I lost my keys tonight but I'm not locked out, my neighbour let me in", True),
    ("it isn't leaking any more, it stopped on its own", True),
    ("it's not just leaking it's pouring through the ceiling", False),
    ("the pipe's not burst yet but it's flooding the floor", False),
    ("never been locked out before, I'm stuck outside with the kids", False),
])
def test_an_emergency_said_not_to_be_happening(text, denied):
    from bot.language import Words
    from bot.understanding import keywords
    assert keywords.denied(Words(text), PROPERTY) is denied


@pytest.mark.parametrize("text", ["Hello, it's not an emergency, but it is urgent: the lift needs booking for my movers on Saturday",
                                  "no emergency or anything, the bathroom fan has stopped working"])
def test_said_outright_to_be_no_emergency_is_never_asked_about(text):
    r = Understanding(PROPERTY, None).read(text)
    assert r.intent != "emergency"
