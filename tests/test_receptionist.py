"""The embedded receptionist dialogue: intents on the shared caller phrases, opening
hours against a fixed clock, the message form into SQLite, actions, config errors."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from bot.providers.base import Action, Conversation
from bot.providers.receptionist import ConfigError, Receptionist, digits_in, load_config, speak_number
from tests.conftest import manifest

# Tuesday 2026-11-24, 15:00 in New York
TUESDAY = datetime(2026, 11, 24, 20, 0, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
async def bot(settings):
    r = Receptionist(settings, clock=lambda: TUESDAY)
    await r.start()
    return r


async def say(bot, conv: Conversation, text: str) -> tuple[str, list[Action]]:
    conv.add_user(text)
    out = [x async for x in bot.reply(conv)]
    reply = "".join(x for x in out if isinstance(x, str)).strip()
    conv.add_assistant(reply)
    return reply, [x for x in out if isinstance(x, Action)]


EXPECT = {
    "What time do you open tomorrow morning?": "Wednesday, we open at 9 AM and close at 5 PM",
    "Can you tell me your address?": "120 Maple Street",
    "I need to speak to a real person, please.": "put you through",
    "No, that's all. Thank you, goodbye.": "Goodbye",
    "My package was supposed to arrive yesterday, but it never came.": "Packages are held",
    "The heating in my apartment stopped working and it's freezing.": "maintenance line",
    "Hi, I'd like to leave a message for the billing department.": "May I have your name?",
    "I want to cancel my appointment on Friday.": "May I have your name?",
    "Hello? Is anyone there?": "I'm here",
    "Sorry, could you repeat that?": "I can tell you",
}


@pytest.mark.parametrize("phrase", sorted({m["text"] for m in manifest()}))
async def test_every_caller_phrase_gets_a_sensible_reply(bot, settings, phrase):
    r = Receptionist(settings.with_(transfer_number="+15550001111"), clock=lambda: TUESDAY)
    await r.start()
    reply, actions = await say(r, Conversation(call_id="CA1"), phrase)
    assert reply and reply[-1] in ".?!"
    if phrase in EXPECT:
        assert EXPECT[phrase] in reply, reply
    if "real person" in phrase:
        assert actions == [Action("transfer", "caller asked for a person")]
    elif "goodbye" in phrase:
        assert [a.kind for a in actions] == ["hangup"]
    else:
        assert actions == []


async def test_hours_today_weekday_week_and_closed_days(settings):
    r = Receptionist(settings, clock=lambda: SATURDAY)
    await r.start()
    conv = Conversation()
    reply, _ = await say(r, conv, "are you open tomorrow")
    assert "Tomorrow, Sunday, we're closed. We open again on Monday at 9 AM." in reply
    reply, _ = await say(r, conv, "what are your hours today")
    assert "Today, Saturday, we open at 10 AM and close at 2 PM." in reply
    reply, _ = await say(r, conv, "when do you open on thursday")
    assert "On Thursdays we open at 9 AM and close at 5 PM." in reply
    reply, _ = await say(r, conv, "what are your opening hours")
    assert "Monday to Friday, 9 AM to 5 PM; Saturday, 10 AM to 2 PM." in reply and "closed on Sunday" in reply


async def test_message_form_end_to_end_is_stored(bot, settings):
    conv = Conversation(call_id="CA42", caller="+15551234567")
    reply, _ = await say(bot, conv, "Hi, I'd like to leave a message for the billing department.")
    assert "name" in reply
    reply, _ = await say(bot, conv, "My name is Sarah Johnson and my number is five five five, two one three, four four six seven.")
    assert "Sarah Johnson" in reply and "five five five, two one three, four four six seven" in reply
    reply, _ = await say(bot, conv, "Yes.")
    assert "passed your message on" in reply
    rows = sqlite3.connect(settings.data_dir / "phonebot.sqlite3").execute("SELECT call_sid, caller, name, callback_number, about FROM messages").fetchall()
    assert rows == [("CA42", "+15551234567", "Sarah Johnson", "5552134467", "Hi, I'd like to leave a message for the billing department.")]
    reply, actions = await say(bot, conv, "No, that's all.")
    assert [a.kind for a in actions] == ["hangup"]


async def test_message_form_uses_the_calling_number_and_corrections(bot, settings):
    conv = Conversation(call_id="CA43", caller="sip:+14155550142@trunk.example.com")
    await say(bot, conv, "I'd like to leave a message")
    reply, _ = await say(bot, conv, "The boiler makes a noise")  # the topic
    assert "name" in reply
    reply, _ = await say(bot, conv, "Tom")
    assert "this number" in reply
    reply, _ = await say(bot, conv, "this number please")
    assert "four one five, five five five, zero one four two" in reply
    reply, _ = await say(bot, conv, "no")
    reply, _ = await say(bot, conv, "555 867 5309")
    reply, _ = await say(bot, conv, "yes that's right")
    assert "passed your message on" in reply
    (row,) = sqlite3.connect(settings.data_dir / "phonebot.sqlite3").execute("SELECT name, callback_number, about FROM messages").fetchall()
    assert row == ("Tom", "5558675309", "The boiler makes a noise")


async def test_person_without_transfer_number_takes_a_message(bot):
    reply, actions = await say(bot, Conversation(), "Can I talk to a human?")
    assert actions == [] and "no one available" in reply and "message" in reply


async def test_two_misunderstandings_offer_a_person(settings):
    r = Receptionist(settings.with_(transfer_number="+15550001111"), clock=lambda: TUESDAY)
    await r.start()
    conv = Conversation()
    reply, _ = await say(r, conv, "blue elephants")
    assert "didn't catch" in reply and "opening hours" in reply
    reply, _ = await say(r, conv, "purple giraffes")
    assert "put you through to a person?" in reply
    reply, actions = await say(r, conv, "yes please")
    assert [a.kind for a in actions] == ["transfer"]


async def test_dtmf_menu(bot):
    conv = Conversation()
    reply, _ = await say(bot, conv, "DTMF 1")
    assert "We're open Monday to Friday" in reply
    reply, _ = await say(bot, conv, "DTMF 2")
    assert "Maple Street" in reply
    reply, _ = await say(bot, conv, "DTMF 9")
    assert "Maple Street" in reply  # repeat


async def test_repeat_says_the_last_reply_again(bot):
    conv = Conversation()
    first, _ = await say(bot, conv, "where are you located")
    again, _ = await say(bot, conv, "sorry, can you repeat that?")
    assert again == first


def test_spoken_and_written_digits():
    assert digits_in("five five five, two one three, four four six seven") == "5552134467"
    assert digits_in("555-213-4467") == "5552134467"
    assert digits_in("oh two oh, double seven") == "02077"
    assert digits_in("a message for billing") == ""
    assert speak_number("5552134467") == "five five five, two one three, four four six seven"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda c: c.pop("hours"), "missing hours"),
        (lambda c: c.update(timezone="Mars/Olympus"), "unknown timezone"),
        (lambda c: c["hours"].update(monday=["9am", "5pm"]), "hours.monday"),
        (lambda c: c["hours"].update(funday=["09:00", "17:00"]), "weekday names"),
        (lambda c: c["hours"].update(tuesday=["17:00", "09:00"]), "closes before it opens"),
        (lambda c: c["faqs"].append({"keywords": "rent"}), "faqs[4]"),
        (lambda c: c["texts"].pop("goodbye"), "texts is missing goodbye"),
    ],
)
async def test_bad_config_is_refused_at_start_up(settings, tmp_path, edit, problem):
    cfg = json.loads(json.dumps({k: v for k, v in load_config(None).items() if not k.startswith("_")}))
    edit(cfg)
    path = tmp_path / "desk.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as info:
        await Receptionist(settings.with_(receptionist_config=str(path))).start()
    assert str(path) in str(info.value) and problem in str(info.value)


async def test_config_that_is_not_json(settings, tmp_path):
    path = tmp_path / "desk.json"
    path.write_text("{ hours: ")
    with pytest.raises(ConfigError, match="not valid JSON"):
        await Receptionist(settings.with_(receptionist_config=str(path))).start()
