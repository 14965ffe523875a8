"""The message form that listens (bot/message_form.py through the receptionist): name,
callback number and what it is about from any utterance in any order, written as speech
recognition hands callers' words over; read-back, corrections, caller-ID offer, DTMF entry
bounded to 15 digits, and placeholders never taken as a name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.conversation import Action, Conversation
from bot.language import MAX_DIGITS, Words
from bot.message_form import said_urgent
from bot.names import name_in
from bot.phone_numbers import number_runs, phone_in
from bot.profile import load_profile
from bot.providers.receptionist import Receptionist
from tests.fakes.store import MemoryStore

PROPERTY = load_profile(Path(__file__).resolve().parents[1] / "examples" / "business" / "property-office.toml")
NIGHT = datetime(2026, 12, 9, 2, 30, tzinfo=UTC)  # 9:30 PM Tuesday in New York: closed
CALLER = "+15551230000"


async def talk(lines: list[str], caller: str = CALLER) -> tuple[list[str], MemoryStore, Conversation]:
    store = MemoryStore()

    async def act(action: Action) -> bool:
        await store.save_message(action.message)
        return True

    r = Receptionist(profile=PROPERTY, clock=lambda: NIGHT)
    conv = Conversation(call_id="CA1", caller=caller, act=act)
    replies = []
    for line in lines:
        conv.add_user(line)
        out = [x async for x in r.reply(conv)]
        reply = "".join(x for x in out if isinstance(x, str)).strip()
        conv.add_assistant(reply)
        replies.append(reply)
    return replies, store, conv


# (lines, name, number, a word of what it is about)
CONVERSATIONS = [
    (["Hi, this is Mark Davis, could someone call me back about renewing my lease? My number is 555 867 5309.", "yes"],
     "Mark Davis", "5558675309", "renewing my lease"),
    (["I'd like to leave a message", "John Smith", "555 123 4567", "My sink is clogged", "yes"], "John Smith", "5551234567", "sink"),
    (["um hi yeah i wanna leave a message", "it's uh about my parking permit", "yeah it's ann lee", "no",
      "five five five two one three four four six seven", "yep that's right"], "Ann Lee", "5552134467", "parking permit"),
    (["hello my name is grace ho and i'd like to leave a message", "it's about changing my appointment", "no",
      "four one five five five five zero one nine eight", "correct"], "Grace Ho", "4155550198", "appointment"),
    (["can i leave a message", "five five five three three three four four four four", "uh it's about a refund", "bob", "yes"],
     "Bob", "5553334444", "refund"),
    (["hi yeah this is carlos mendez um could somebody give me a call back about my invoice my number is five five five "
      "two one two nine nine eight eight", "yes"], "Carlos Mendez", "5552129988", "invoice"),
    (["please have someone call me back about a noisy neighbour", "my name is ahmed", "yes please", "yes"],
     "Ahmed", "5551230000", "noisy neighbour"),
    (["message please", "this is karen i live in unit 12 and the hallway light is out", "no", "five five five one two three",
      "four five six seven", "yes"], "Karen", "5551234567", "hallway light"),
    (["leave a message please, this is dana from unit 3, my dishwasher won't drain", "no", "555 301 7788", "no, it ends 7789", "yes"],
     "Dana", "5553017789", "dishwasher"),
    (["can i leave a message for the leasing team, i'm interested in a two bedroom", "mark jones", "no", "212 555 0144",
      "my name is marc with a c", "yes"], "Marc Jones", "2125550144", "two bedroom"),
    (["i need somebody to call me back", "it's about my rent payment", "it's john", "no the name is jon without an h",
      "five five five, nine eight seven, six five four three", "no", "the number", "555 987 6544", "correct"],
     "Jon", "5559876544", "rent payment"),
    (["i'd like to leave a message about my invoice", "it's siobhan, s i o b h a n", "no", "DTMF 07700900789", "DTMF 1"],
     "Siobhan", "07700900789", "invoice"),
    (["leave a message please it's about the quote you sent", "lena fischer", "no", "555 010 2020", "no wrong number",
      "555 010 2030", "yes"], "Lena Fischer", "5550102030", "quote"),
    (["i want to leave a message about the parking permit", "yes", "it's lisa wong", "yeah this number is fine", "yes"],
     "Lisa Wong", "5551230000", "parking permit"),
    (["could you take a message, tell them it's pete rossi from the third floor about the service charge bill,"
      " you can get me on 555 222 9090", "yes"], "Pete Rossi", "5552229090", "service charge"),
    (["yeah hi i'd like to leave a message, my number is 555 642 1010 and my name is olu adeyemi, the front gate code "
      "isn't working", "yes"], "Olu Adeyemi", "5556421010", "gate code"),
]


@pytest.mark.parametrize(("lines", "name", "number", "about"), CONVERSATIONS, ids=[c[0][0][:40] for c in CONVERSATIONS])
async def test_the_message_has_exactly_what_the_caller_said(lines, name, number, about):
    replies, store, conv = await talk(lines)
    (m,) = store.saved
    assert (m.name, m.callback_number, m.status) == (name, number, "new"), replies
    assert about in m.about.lower(), (m.about, replies)
    assert "passed your message on" in replies[-1] and conv.pending_message() is None


async def test_everything_at_once_is_read_back_and_nothing_is_asked_again():
    replies, _, _ = await talk(["Hi, this is Mark Davis, could someone call me back about renewing my lease? My number is 555 867 5309."])
    assert "Mark Davis" in replies[0] and "five five five, eight six seven, five three zero nine" in replies[0]
    assert "renewing your lease" in replies[0] and "name?" not in replies[0] and "What number" not in replies[0]


@pytest.mark.parametrize("placeholder", ["yes", "Yes.", "hi", "the caller", "yeah sure", "ok", "hello?", "no", "it's me",
                                         "that's right", "sorry what"])
async def test_a_placeholder_is_never_a_name(placeholder):
    replies, _, conv = await talk(["i'd like to leave a message about my lease", placeholder])
    assert conv.pending_message()["name"] == "" and "name" in replies[-1].lower()


async def test_a_caller_who_never_gives_a_name_leaves_a_message_without_a_placeholder():
    _, store, _ = await talk(["i'd like to leave a message about my lease", "yes", "hmm yes", "yes", "yes"])
    (m,) = store.saved
    assert m.name == "" and m.callback_number == "5551230000"


async def test_caller_id_offer_yes_and_no():
    replies, _, conv = await talk(["message about my lease please", "tom baker"])
    assert "number you're calling from, ending zero zero zero zero" in replies[-1]
    replies, _, conv = await talk(["message about my lease please", "tom baker", "no"])
    assert "What number" in replies[-1] and conv.pending_message()["callback_number"] == ""
    replies, _, conv = await talk(["message about my lease please", "tom baker", "sure"])
    assert "five five five, one two three, zero zero zero zero" in replies[-1]
    replies, _, conv = await talk(["message about my lease please", "tom baker"], caller="anonymous")
    assert "What number" in replies[-1] and "calling from" not in replies[-1]


@pytest.mark.parametrize("keys", ["1" * 16, "9" * 40, "5" * 1000])
async def test_a_keyed_number_longer_than_15_digits_is_refused_and_never_spoken(keys):
    replies, _, conv = await talk(["message about my lease please", "tom baker", "no", f"DTMF {keys}"])
    assert "at most 15 digits" in replies[-1] and keys[:10] not in replies[-1]
    assert conv.pending_message()["callback_number"] == ""
    replies, store, _ = await talk(["message about my lease please", "tom baker", "no", f"DTMF {keys}", "DTMF 5551239876", "DTMF 1"])
    assert store.saved[0].callback_number == "5551239876"


async def test_a_spoken_number_longer_than_15_digits_is_refused():
    long = " ".join(["five five five one two three four"] * 3)
    replies, _, conv = await talk(["message about my lease please", "tom baker", "no", long])
    assert "at most 15 digits" in replies[-1] and conv.pending_message()["callback_number"] == ""
    replies, _, conv = await talk([f"hi this is tom baker call me back about the lease on {long}"])
    assert "at most 15 digits" in replies[-1] and conv.pending_message()["callback_number"] == ""


async def test_a_short_keyed_number_is_asked_again():
    replies, _, _ = await talk(["message about my lease please", "tom baker", "no", "DTMF 5551"])
    assert "too few digits" in replies[-1]


async def test_dtmf_answers_the_read_back():
    replies, store, _ = await talk(["message about my lease please", "tom baker", "no", "DTMF 5551239876", "DTMF 2"])
    assert "change" in replies[-1] and store.saved == []


async def test_yes_thats_it_confirms_instead_of_hanging_up():
    replies, store, _ = await talk(["message about my lease please", "tom baker", "no", "555 123 9876", "yes that's it"])
    assert store.saved and "passed your message on" in replies[-1]


async def test_no_thank_you_to_the_calling_number_is_not_a_goodbye():
    replies, store, conv = await talk(["message about my lease please", "tom baker", "no thank you"])
    assert "What number" in replies[-1] and conv.pending_message() is not None


async def test_the_pending_message_grows_field_by_field():
    _, _, conv = await talk(["i'd like to leave a message"])
    assert conv.pending_message() == {"name": "", "callback_number": "", "about": "", "urgent": False}
    _, _, conv = await talk(["i'd like to leave a message", "john smith"])
    assert conv.pending_message()["name"] == "John Smith"
    _, _, conv = await talk(["i'd like to leave a message", "john smith", "555 123 4567"])
    assert conv.pending_message() == {"name": "John Smith", "callback_number": "5551234567", "about": "", "urgent": False}


@pytest.mark.parametrize(("text", "name"), [
    ("my name is sarah johnson", "Sarah Johnson"), ("this is tom from 4b", "Tom"), ("john smith here", "John Smith"),
    ("i'm priya and i live upstairs", "Priya"), ("it's marc with a c", None), ("um yeah this is uh dave", "Dave"),
    ("i'm calling about my rent", None), ("i'm locked out", None), ("this is urgent", None), ("it's about my lease", None),
    ("i am stuck in the lift", None), ("hi", None), ("the caller", None), ("my name's ann with an e", "Anne"),
])
def test_names_in_free_speech(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize(("text", "number", "problem"), [
    ("my number is 555 867 5309", "5558675309", ""), ("unit 12, call me on 555 867 5309", "5558675309", ""),
    ("apartment 12 555 123 4567", "5551234567", ""), ("plus four four seven seven zero zero nine zero zero one two three",
                                                      "+447700900123", ""),
    ("oh seven seven double oh nine hundred one two three", "07700900123", ""), ("it ends 5309", "", "short"),
    ("1" * 16, "", "long"), ("5" * 1000, "", "long"), ("no number here", "", ""),
])
def test_phone_numbers_are_bounded(text, number, problem):
    got = phone_in(text)
    assert got == (number, problem) and len(got[0]) <= MAX_DIGITS


async def unit_talk(lines: list[str], question: str = "Which unit are you in?") -> tuple[list[str], MemoryStore, Conversation]:
    from dataclasses import replace

    store = MemoryStore()

    async def act(action: Action) -> bool:
        await store.save_message(action.message)
        return True

    r = Receptionist(profile=replace(PROPERTY, unit_question=question), clock=lambda: NIGHT)
    conv = Conversation(call_id="CA2", caller=CALLER, act=act)
    replies = []
    for line in lines:
        conv.add_user(line)
        out = [x async for x in r.reply(conv)]
        replies.append("".join(x for x in out if isinstance(x, str)).strip())
        conv.add_assistant(replies[-1])
    return replies, store, conv


async def test_a_business_that_asks_for_the_unit_gets_it_in_any_order():
    replies, store, _ = await unit_talk(["i'd like to leave a message about my mailbox key", "ann lee", "apartment twelve b", "yes", "yes"])
    assert replies[1].endswith("Which unit are you in?") and "Apartment 12B" in replies[3]
    assert store.saved[0].about == "Apartment 12B: my mailbox key"
    _, store, _ = await unit_talk(["hi this is dana in unit four c, call me back about my dishwasher on 555 301 7788", "yes"])
    assert (store.saved[0].name, store.saved[0].callback_number, store.saved[0].about) == ("Dana", "5553017788", "Unit 4C: my dishwasher")
    replies, store, _ = await unit_talk(["message about renting an apartment", "sam", "i'm not a tenant", "yes", "yes"])
    assert store.saved[0].about == "renting an apartment"
    _, store, _ = await unit_talk(["message please, it's about my bins", "sam", "it's twelve harbour road", "yes", "yes"],
                                  question="What is the address?")
    assert store.saved[0].about == "12 Harbour Road: my bins"


async def test_no_unit_is_asked_when_the_business_does_not_ask():
    replies, _, _ = await talk(["i'd like to leave a message about my mailbox key", "ann lee"])
    assert "unit" not in replies[-1].lower()


def test_the_business_file_option_is_checked(tmp_path):
    from bot.profile import ProfileError

    text = (Path(__file__).resolve().parents[1] / "examples" / "business" / "property-office.toml").read_text()
    f = tmp_path / "b.toml"
    f.write_text(text + '\n[message]\nunit_question = "Which apartment are you in?"\n')
    assert load_profile(f).unit_question == "Which apartment are you in?"
    f.write_text(text + '\n[message]\nunit = true\n')
    with pytest.raises(ProfileError, match="message.unit: unknown key"):
        load_profile(f)


async def test_nothing_long_reaches_the_voice_from_the_subject_or_the_name():
    huge = "7" * 1000
    replies, _, conv = await talk([f"i'd like to leave a message about invoice {huge}", "tom baker", "yes"])
    assert all(huge[:16] not in r for r in replies) and conv.pending_message()["callback_number"] == "5551230000"
    replies, _, _ = await talk(["i'd like to leave a message about invoice " + "seven " * 40, "tom baker", "yes"])
    assert all("seven seven seven seven seven seven seven seven seven seven seven seven seven seven seven seven" not in r for r in replies)
    replies, _, conv = await talk(["i'd like to leave a message about my lease", "my name is " + "a" * 5000, "yes"])
    assert conv.pending_message()["name"] == "" and all(len(r) < 400 for r in replies)


@pytest.mark.parametrize("hostile", ["5" * 20000, "five " * 3000, "my name is " * 3000, "this is john " * 2000, ", " * 10000,
                                     "-" * 10000 + "5", "m a r c " * 3000, "unit four c " * 2000, "名前は田中です " * 500,
                                     "DTMF " + "1" * 5000, "\x00\x07 my name is \u202eann", "with a c " * 2000])
async def test_hostile_words_in_the_form_get_a_short_answer(hostile):
    replies, _, conv = await talk(["i'd like to leave a message", hostile, hostile, "yes"])
    pending = conv.pending_message() or {}
    assert all(len(r) < 400 for r in replies)
    assert len(pending.get("callback_number", "")) <= 15 and len(pending.get("name", "")) <= 130
    assert all(not any(len(run) > 15 for run in number_runs(r)) for r in replies)


def test_a_number_corrected_in_the_same_breath_and_one_as_a_word():
    assert phone_in("my number is 608 555 0155, no wait, 0156") == ("6085550156", "")
    assert phone_in("not this phone, my work one, 0117 496 0555") == ("01174960555", "")
    assert phone_in("five five five one two one two one two one") == ("5551212121", "")


@pytest.mark.parametrize(("words", "urgent"), [
    ("it's not an emergency but it is urgent, first thing please", True),
    ("can someone call me asap about my deposit", True),
    ("nothing urgent, just the hallway light", False),
    ("it's not urgent at all", False),
    ("my deposit still hasn't come back", False),
])
def test_a_message_the_caller_calls_urgent_is_marked_urgent(words, urgent):
    assert said_urgent(words) is urgent


async def test_urgent_said_while_a_message_is_taken_marks_it_urgent():
    from bot.message_form import advance, new_form

    st = {"form": new_form("the radiator valve is leaking again"), "awaiting": None}
    st["form"]["asked"] = "name"
    conv = Conversation(call_id="CA9", caller="+15550000000")
    await advance("No, it can wait till you open, but please put it down as urgent, I've got a toddler.",
                  Words("No, it can wait till you open, but please put it down as urgent"), st, conv)
    assert st["form"]["urgent"] is True


def test_a_full_name_said_alone_replaces_a_one_word_name_heard_before():
    from bot.message_fields import absorb
    from bot.message_form import new_form

    f = new_form("a chipped tooth")
    f["name"], f["one_word"], f["asked"] = "More", False, "caller_id"
    absorb(f, "Chloe Fitzgerald", Words("Chloe Fitzgerald"), asked="caller_id")
    assert f["name"] == "Chloe Fitzgerald"


def test_this_number_said_before_it_was_offered_is_the_callback_number():
    from bot.message_form import new_form, step

    f = new_form("a radiator stays cold at the top")
    f["name"], f["asked"] = "Rhiannon Pugh", "unit"
    raw = "This number's fine, and the house is 3 Moor Lane, Guiseley, LS20 8DX."
    step(f, raw, Words(raw), "5550000000")
    assert f["number"] == "5550000000"


@pytest.mark.parametrize(("raw", "only"), [
    ("Dawn Marsh, in unit 2A.", True),
    ("Tom Reed, 555 123 4567", True),
    ("it's Bob Stone, he collapsed", False),  # a problem of its own: asked about as ever
    ("it's Bob Stone, flooding", False),
])
def test_details_and_nothing_else(raw, only):
    from bot.message_fields import details_only

    assert details_only(raw, True) is only


def test_calling_from_another_phone_is_not_this_number():
    from bot.message_form import new_form, step

    f = new_form("a leak")
    f["asked"] = "name"
    raw = "It's Dana Lee, I'm calling from my neighbour's phone"
    step(f, raw, Words(raw), "5550000000")
    assert f["number"] is None
