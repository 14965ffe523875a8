"""The LLM that knows the business and acts, against the OpenAI wire fake with the real
SDK: the system prompt from the profile and the local clock, tool calls streamed in
fragments, tool results sent back for the model's next words, transfers by purpose and
time of day, a speculative turn that cannot save, and the fallback when tools are refused."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.conversation import TURN_CONFIRMED, Action, Conversation
from bot.profile import load_profile
from bot.providers.openai_llm import OpenAILLM
from bot.tools import ToolContext, business_tools
from tests.conftest import eventually
from tests.fakes.cloud import FakeBehaviour, openai_app
from tests.fakes.scripted import ScriptedSTT, ScriptedTTS
from tests.fakes.store import MemoryStore
from tests.test_calls import TOKEN, phone_settings, serve, url
from tests.test_receptionist import EXAMPLES

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

PROPERTY = load_profile(EXAMPLES / "property-office.toml")
TUESDAY_3PM = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # New York
WEDNESDAY_2AM = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
TAKE = ("take_message", json.dumps({"name": "Ann Lee", "callback_number": "555-123-4567", "about": "the boiler is noisy", "urgent": False}))


async def fake_llm(aiohttp_server, when=TUESDAY_3PM, **behaviour):
    state = FakeBehaviour(**behaviour)
    server = await aiohttp_server(openai_app(state))
    llm = OpenAILLM(base_url=str(server.make_url("/v1")), api_key="sk-test", timeout=3.0, profile=PROPERTY, clock=lambda: when)
    await llm.start()
    return llm, state


def conversation(store: MemoryStore, text: str, **kw) -> Conversation:
    async def act(action: Action) -> bool:
        await store.save_message(action.message)
        return True

    conv = Conversation(call_id="CA1", caller="+15550001234", act=act, **kw)
    conv.add_user(text)
    return conv


async def test_system_prompt_holds_hours_address_and_local_date(aiohttp_server):
    llm, state = await fake_llm(aiohttp_server, reply="We open at nine.")
    items = [x async for x in llm.reply(conversation(MemoryStore(), "when do you open?"))]
    assert "".join(items) == "We open at nine."
    system = state.last.messages[0]["content"]
    assert "Tuesday 24 November 2026, 3 PM local time (America/New_York)" in system
    assert "Monday to Friday, 9 AM to 5 PM; Saturday, 10 AM to 2 PM" in system
    assert "120 Maple Street" in system and "Christmas Day" in system and "Packages are held" in system
    await llm.close()


async def test_streamed_take_message_is_saved_and_its_result_goes_back(aiohttp_server):
    llm, state = await fake_llm(aiohttp_server, script=[
        {"reply": "Let me note that.", "tool_calls": [TAKE]},
        {"reply": " Done, I've passed it on."},
    ], arg_piece=5)
    store = MemoryStore()
    items = [x async for x in llm.reply(conversation(store, "please tell them my boiler is noisy, I'm Ann Lee, 555 123 4567"))]
    assert "".join(i for i in items if isinstance(i, str)) == "Let me note that. Done, I've passed it on."
    (m,) = store.saved
    assert (m.name, m.callback_number, m.about, m.caller, m.status) == ("Ann Lee", "5551234567", "the boiler is noisy", "+15550001234", "new")
    second = state.requests[1].messages
    call = second[-2]["tool_calls"][0]
    assert call["function"] == {"name": "take_message", "arguments": TAKE[1]}  # the fragments joined
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == call["id"] and second[-1]["content"].startswith("saved")
    await llm.close()


async def test_two_tool_calls_in_one_reply_and_a_terminal_action(aiohttp_server):
    llm, state = await fake_llm(aiohttp_server, script=[
        {"reply": "", "tool_calls": [("get_hours", '{"day": "tomorrow"}'), ("end_call", "{}")]},
        {"reply": "We open at nine tomorrow. Goodbye!"},
    ])
    items = [x async for x in llm.reply(conversation(MemoryStore(), "what about tomorrow? that's all"))]
    assert items[-1] == Action("hangup", "model tool call")
    tools = [m for m in state.requests[1].messages if m["role"] == "tool"]
    assert tools[0]["content"] == "Tomorrow, Wednesday, we're open 9 AM to 5 PM."
    await llm.close()


async def test_a_speculative_turn_cannot_save_until_confirmed(aiohttp_server):
    llm, state = await fake_llm(aiohttp_server, script=[{"reply": "", "tool_calls": [TAKE]}, {"reply": "Passed on."}])
    store = MemoryStore()
    gate = asyncio.Event()

    async def speculative_turn():
        TURN_CONFIRMED.set(gate)
        return [x async for x in llm.reply(conversation(store, "take a message"))]

    task = asyncio.create_task(speculative_turn())
    await eventually(lambda: state.requests, 10, 0.01)
    await asyncio.sleep(0.3)  # time for the streamed tool call to arrive and wait for the gate
    assert store.saved == [] and len(state.requests) == 1 and not task.done()
    gate.set()
    assert "".join(i for i in await task if isinstance(i, str)) == "Passed on."
    assert len(store.saved) == 1
    # a dropped speculative turn: cancelled while waiting, it saves nothing
    state.script = [{"reply": "", "tool_calls": [TAKE]}, {"reply": "Passed on."}]
    seen = len(state.requests)
    task = asyncio.create_task(_never_confirmed(llm, store))
    await eventually(lambda: len(state.requests) != seen, 10, 0.01)
    await asyncio.sleep(0.3)
    assert len(state.requests) == seen + 1  # no second completion: the tool waits
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(store.saved) == 1
    await llm.close()


async def _never_confirmed(llm, store):
    TURN_CONFIRMED.set(asyncio.Event())
    return [x async for x in llm.reply(conversation(store, "take a message"))]


@pytest.mark.parametrize(("when", "purpose", "number"), [
    (WEDNESDAY_2AM, "emergency", PROPERTY.transfer.on_call),
    (TUESDAY_3PM, "front_desk", PROPERTY.transfer.front_desk),
    (WEDNESDAY_2AM, "front_desk", None),
])
async def test_transfer_by_purpose_and_time(when, purpose, number):
    tools = business_tools()
    result = await tools.call("transfer_call", json.dumps({"purpose": purpose}), ToolContext(Conversation(), PROPERTY, PROPERTY.local(when)))
    if number is None:
        assert result.action is None and "closed" in result.content and "message" in result.content
    else:
        assert result.action == Action("transfer", "model tool call", purpose, number)


async def test_bad_tool_input_goes_back_to_the_model_not_up(aiohttp_server):
    tools = business_tools()
    ctx = ToolContext(Conversation(), PROPERTY, PROPERTY.local(TUESDAY_3PM))
    assert (await tools.call("take_message", '{"name": "Ann"', ctx)).content.startswith("error")
    assert (await tools.call("launch_rockets", "{}", ctx)).content.startswith("error")
    short = await tools.call("take_message", json.dumps({"name": "Ann", "callback_number": "12", "about": "x", "urgent": False}), ctx)
    assert short.content.startswith("not saved") and short.action is None


async def test_server_rejecting_tools_falls_back_to_the_receptionist_form(aiohttp_server, caplog):
    llm, state = await fake_llm(aiohttp_server, reject_tools=True, reply="We're a property office.")
    store = MemoryStore()
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        conv = conversation(store, "I'd like to leave a message about my lease")
        reply = "".join(x for x in [x async for x in llm.reply(conv)] if isinstance(x, str))
    assert "May I have your name?" in reply
    assert any(r.levelno == logging.WARNING and "rejected tools" in r.getMessage() for r in caplog.records)
    conv.add_assistant(reply)
    for line in ("Ann Lee, five five five one two three four five six seven", "yes"):
        conv.add_user(line)
        reply = "".join(x for x in [x async for x in llm.reply(conv)] if isinstance(x, str))
        conv.add_assistant(reply)
    assert "passed your message on" in reply and store.saved[0].name == "Ann Lee"
    other = conversation(store, "who manages the building?")
    assert "".join([x async for x in llm.reply(other)]) == "We're a property office."  # the model, without tools
    assert not state.last.json.get("tools")
    await llm.close()


async def test_emergency_at_2am_dials_the_on_call_number_in_a_call(aiohttp_server, settings):
    state = FakeBehaviour(script=[
        {"reply": "I'm sorry to hear that.", "tool_calls": [("transfer_call", '{"purpose": "emergency"}')]},
        {"reply": " I'm putting you through to our on-call team now."},
    ])
    fake = await aiohttp_server(openai_app(state))
    s = phone_settings(settings, openai_base_url=str(fake.make_url("/v1")), llm_provider="openai", llm_timeout=3.0)
    llm = OpenAILLM.from_settings(s, profile=PROPERTY, clock=lambda: WEDNESDAY_2AM)
    server, p, app = await serve(aiohttp_server, s, stt=ScriptedSTT(text="water is pouring through my ceiling"), llm=llm, tts=ScriptedTTS(ms_per_char=3))
    from handlers.state import CALLS

    sessions: list = []

    async def grab():
        await eventually(lambda: app[CALLS], 20, 0.01)
        sessions.extend(app[CALLS].values())

    watcher = asyncio.create_task(grab())
    report = await simulate_call(url(server), [_speech()], auth_token=TOKEN, max_wait_s=10, quiet_s=0.5)
    await watcher
    assert report.hung_up_by_bot and sessions[0].outcome == "emergency"
    import aiohttp
    from twilio.request_validator import RequestValidator

    params = {"CallSid": report.call_sid}
    sig = RequestValidator(TOKEN).compute_signature(url(server) + "/twilio/after", params)
    async with aiohttp.ClientSession() as http:
        r = await http.post(url(server) + "/twilio/after", data=params, headers={"X-Twilio-Signature": sig})
        assert f'<Dial timeout="{PROPERTY.transfer.no_answer_s}">{PROPERTY.transfer.on_call}</Dial>' in await r.text()


def _speech() -> bytes:
    from media import wav
    from tests.conftest import trimmed_speech

    silence = b"\0\0" * (8 * 300)
    return wav.write_pcm16(silence + trimmed_speech("emergency_joe.wav") + silence, 8000)
