"""The LLM path against servers that are not OpenAI: what llama.cpp's Python server does,
reproduced in the OpenAI wire fake and met with the real SDK. Tools need ``tool_choice``;
streamed tool turns fail after a 200; a model rambles; a model speaks template junk and
entities; a server is down; a context is small. Each is handled from what the server does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import sys

import pytest

from bot.carriers.twilio.simulator import simulate_call
from bot.conversation import Action, Conversation
from bot.errors import StageError
from bot.prompts import failure_prompt
from bot.providers.failover import FailoverLLM
from bot.providers.llm_history import tokens, trim, turns
from bot.providers.openai_llm import STOP, OpenAILLM
from bot.providers.receptionist import Receptionist
from handlers.state import PROMPTS
from tests.fakes.cloud import RAMBLE, FakeBehaviour, openai_app
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.fakes.store import MemoryStore
from tests.test_calls import ADDRESS, OPEN, TOKEN, phone_settings, serve, url
from tests.test_llm_tools import PROPERTY, TAKE, TUESDAY_3PM, conversation
from tests.test_receptionist import REPO_ROOT

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

JUNK = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "[INST]", "<<SYS>>", "&#", "&amp;", "**", "<b>", "</", "http", "```",
        "take_message", "transfer_call", "get_hours", "end_call", "User:")


async def llm_at(aiohttp_server, **behaviour):
    options = {k: behaviour.pop(k) for k in ("max_tokens", "reply_s", "takeover", "timeout") if k in behaviour}
    state = FakeBehaviour(**behaviour)
    server = await aiohttp_server(openai_app(state))
    llm = OpenAILLM(base_url=str(server.make_url("/v1")), api_key="sk-test", profile=PROPERTY, clock=lambda: TUESDAY_3PM,
                    **({"timeout": 3.0} | options))
    await llm.start()
    return llm, state


async def said(llm, conv) -> tuple[str, list[Action]]:
    items = [x async for x in llm.reply(conv)]
    return "".join(i for i in items if isinstance(i, str)).strip(), [i for i in items if isinstance(i, Action)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ 1. tools go with tool_choice


async def test_tools_go_with_tool_choice_auto_so_a_llama_server_sees_them(aiohttp_server):
    llm, state = await llm_at(aiohttp_server, tools_need_choice=True, max_tokens=120,
                              script=[{"reply": "Let me note that.", "tool_calls": [TAKE]}, {"reply": " Done, it's passed on."}])
    store = MemoryStore()
    text, _ = await said(llm, conversation(store, "please tell them my boiler is noisy, I'm Ann Lee, 555 123 4567"))
    assert text == "Let me note that. Done, it's passed on."
    assert [m.name for m in store.saved] == ["Ann Lee"]
    first = state.requests[0].json
    assert first["tool_choice"] == "auto" and {t["function"]["name"] for t in first["tools"]} >= {"take_message", "end_call"}
    assert first["max_tokens"] == 120 and first["stop"] == STOP and len(STOP) <= 4  # OpenAI takes at most four
    assert llm.last_usage and llm.last_usage["prompt_tokens"] > 400  # the tools were in the prompt
    await llm.close()


async def test_parameters_a_model_refuses_are_dropped_or_renamed_once(aiohttp_server, caplog):
    llm, state = await llm_at(aiohttp_server, refuse_params=("max_tokens", "stop"), max_tokens=90, reply="We open at nine.")
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        assert (await said(llm, conversation(MemoryStore(), "hours?")))[0] == "We open at nine."
    last = state.last.json
    assert last["max_completion_tokens"] == 90 and "max_tokens" not in last and "stop" not in last
    n = len(state.requests)
    assert (await said(llm, conversation(MemoryStore(), "hours?")))[0] == "We open at nine."
    assert len(state.requests) == n + 1  # remembered
    assert len([r for r in caplog.records if "refused a parameter" in r.getMessage()]) == 2
    await llm.close()


# ------------------------------------------------------------------ 2. streamed tool turns that fail after a 200


@pytest.mark.parametrize("how", ["error_event", "close", "500"])
async def test_a_server_that_cannot_stream_tool_turns_gets_them_non_streamed(aiohttp_server, caplog, how):
    llm, state = await llm_at(aiohttp_server, stream_tools=how, script=[
        {"reply": "Let me note that.", "tool_calls": [TAKE]}, {"reply": "Done, it's passed on."},
        {"reply": "We open at nine tomorrow."},
    ])
    store = MemoryStore()
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        text, _ = await said(llm, conversation(store, "tell them my boiler is noisy, Ann Lee, 555 123 4567"))
        assert text == "Let me note that. Done, it's passed on." and len(store.saved) == 1
        streamed = [bool(r.json.get("stream")) for r in state.requests]
        assert streamed == [True, False, False]  # the failed stream, the turn again whole, the tool result round
        if how == "close":  # an empty 200 once may be a glitch: the next turn streams again, the second is believed
            state.script.insert(0, {"reply": "Noted."})
            assert (await said(llm, conversation(store, "thanks")))[0] == "Noted." and state.requests[-2].json["stream"]
        text, _ = await said(llm, conversation(store, "when do you open tomorrow?"))
    assert text == "We open at nine tomorrow." and not state.last.json.get("stream")  # remembered: no streamed try
    assert state.last.json["tool_choice"] == "auto"
    warned = [r for r in caplog.records if "cannot stream replies with tools" in r.getMessage()]
    assert len(warned) == 1
    await llm.close()


async def test_a_plain_server_error_is_not_taken_for_a_streaming_limit(aiohttp_server):
    llm, state = await llm_at(aiohttp_server, mode="500")
    with pytest.raises(StageError) as info:
        await said(llm, conversation(MemoryStore(), "hello"))
    assert info.value.code == "upstream_error" and len(state.requests) == 1
    state.mode = "error_event"  # an error after words: the turn's error, not a refusal of streamed tools
    with pytest.raises(StageError) as info:
        await said(llm, conversation(MemoryStore(), "hello"))
    assert info.value.code == "bad_response" and state.last.json["stream"] and len(state.requests) == 2
    await llm.close()


# ------------------------------------------------------------------ 3. rambling


async def test_max_tokens_ends_a_rambling_reply_at_its_last_whole_sentence(aiohttp_server):
    llm, state = await llm_at(aiohttp_server, ramble=True, max_tokens=37)
    text, _ = await said(llm, conversation(MemoryStore(), "tell me about the building"))
    assert state.last.json["max_tokens"] == 37
    assert text.endswith(".") and text.split(". ")[0] + "." == RAMBLE[0].strip()
    assert len(text.split()) <= 37
    await llm.close()


async def test_a_server_that_ignores_max_tokens_is_cut_by_the_reply_budget(aiohttp_server, caplog):
    llm, state = await llm_at(aiohttp_server, ramble=True, honour_max_tokens=False, tokens_per_s=400, reply_s=0.6)
    t0 = asyncio.get_running_loop().time()
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        text, _ = await said(llm, conversation(MemoryStore(), "tell me about the building"))
    took = asyncio.get_running_loop().time() - t0
    assert took < 0.6 + 10, took  # the stream never ends by itself: the budget ended it (slack for a busy machine)
    assert text.endswith(".") and len(text.split()) > 20
    assert any("over its time budget" in r.getMessage() for r in caplog.records)
    await llm.close()


# ------------------------------------------------------------------ 4. what the model says that must not be spoken


SPOKEN = [
    ("That&#39;s right, we&#39;re open until five.", "That's right, we're open until five."),
    ("We&amp;amp;#39;re at 120 Maple Street.", "We're at 120 Maple Street."),
    ("<<SYS>> You are the receptionist <</SYS>> We open at nine.", ""),
    ("We open at nine.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd on Sunday?", "We open at nine."),
    ("<|im_start|>assistant\nWe open at nine.<|im_end|>\n<|im_start|>user\nthanks", "We open at nine."),
    ("We open at **nine** tomorrow.\nUser: great\nAssistant: bye", "We open at nine tomorrow."),
    ("### Hours\n- Monday: 9 to 5\n- Saturday: 10 to 2", "Hours. Monday: 9 to 5. Saturday: 10 to 2"),
    ("See <a href=\"https://maple.example/hours\">our hours</a> at https://www.maple-property.com/hours today.",
     "See our hours at maple-property dot com today."),
    ('Sure. {"name": "take_message", "arguments": {"name": "Ann"}}', "Sure."),
    ("I'll use end_call now. Goodbye!", "Goodbye!"),
    ("Of course. <tool_call>{\"name\": \"transfer_call\", \"arguments\": {\"purpose\": \"front_desk\"}}</tool_call>", "Of course."),
    ("[INST] what are your hours [/INST]", ""),
    ("```\nprint('hi')\n```\nThanks for calling!", "Thanks for calling!"),
    ("Happy to help 😀! We're open.", "Happy to help! We're open."),
]


@pytest.mark.parametrize(("raw", "spoken"), SPOKEN)
@pytest.mark.parametrize("piece", [1, 4])
async def test_template_junk_markup_and_entities_never_reach_the_caller(aiohttp_server, raw, spoken, piece):
    llm, state = await llm_at(aiohttp_server, reply=raw, token_chars=piece)
    conv = conversation(MemoryStore(), "when do you open?")
    if not spoken:
        with pytest.raises(StageError) as info:  # nothing left to say: the turn's failure, the fallback answers
            await said(llm, conv)
        assert info.value.code == "empty_result"
        return
    text, _ = await said(llm, conv)
    assert text == spoken
    conv.add_assistant(text)  # what the call stores: the next request carries it as said
    conv.add_user("thanks")
    state.reply = "You're welcome."
    await said(llm, conv)
    history = json.dumps(state.last.messages[1:])
    assert not [j for j in JUNK if j in history], history
    await llm.close()


async def test_the_system_prompt_read_back_is_dropped_but_the_facts_may_be_repeated(aiohttp_server, caplog):
    from bot.settings import DEFAULT_SYSTEM_PROMPT

    llm, _ = await llm_at(aiohttp_server, reply=DEFAULT_SYSTEM_PROMPT + " We're open Monday to Friday, 9 AM to 5 PM; Saturday, 10 AM to 2 PM.")
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        text, _ = await said(llm, conversation(MemoryStore(), "hours?"))
    assert text == "We're open Monday to Friday, 9 AM to 5 PM; Saturday, 10 AM to 2 PM."
    assert any("instructions read out" in r.getMessage() for r in caplog.records)
    await llm.close()


# ------------------------------------------------------------------ 5. a server that is down


async def test_openai_alone_lets_the_receptionist_take_a_message_while_the_server_is_down():
    store = MemoryStore()
    llm = OpenAILLM(base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=1.0, profile=PROPERTY, clock=lambda: TUESDAY_3PM)
    conv = conversation(store, "I'd like to leave a message for the landlord about my boiler")
    text, _ = await said(llm, conv)
    assert "May I have your name?" in text
    for line in ("Ann Lee, five five five one two three four five six seven", "yes"):
        conv.add_assistant(text)
        conv.add_user(line)
        text, _ = await said(llm, conv)
    assert "passed your message on" in text and store.saved[0].name == "Ann Lee"
    with pytest.raises(StageError) as info:  # a question the receptionist does not want: the turn fails
        await said(llm, conversation(store, "does the building have a gym?"))
    assert info.value.code == "upstream_error"
    # the model was taking a message when its server went: the receptionist carries on with the caller
    midway = conversation(store, "I need to leave a message about my rent")
    midway.add_assistant("Of course. What's your name?")
    midway.add_user("Bob Stone")
    text, _ = await said(llm, midway)
    assert "message" in text.lower()
    in_chain = OpenAILLM(base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=1.0, profile=PROPERTY, takeover=False)
    with pytest.raises(StageError):  # in a chain the chain's receptionist answers, not a hidden one
        await said(in_chain, conversation(store, "I'd like to leave a message"))
    await llm.close()
    await in_chain.close()


async def test_a_hanging_server_leaves_the_receptionist_time_to_answer_within_the_stage_budget(aiohttp_server):
    from bot.orchestrator import Orchestrator, SentenceEnd, Timings

    llm, state = await llm_at(aiohttp_server, mode="hang", timeout=1.0)
    orch = Orchestrator(ScriptedSTT(), llm, ScriptedTTS(), stt_timeout=1, llm_timeout=1.0, tts_timeout=1)  # the call's own bound
    conv = conversation(MemoryStore(), "I'd like to leave a message please")
    events = [e async for e in orch.respond(conv, mulaw=True, timings=Timings())]
    assert any(isinstance(e, SentenceEnd) and "message" in e.text for e in events)
    await llm.close()


def test_from_settings_takes_over_only_without_a_chain(settings):
    alone = settings.with_(llm_provider="openai", openai_base_url="http://127.0.0.1:9/v1")
    assert OpenAILLM.from_settings(alone).takeover.enabled and not OpenAILLM.from_settings(alone.with_(llm_provider="openai,receptionist")).takeover.enabled


def test_a_failed_llm_or_tts_does_not_blame_the_callers_speech():
    assert failure_prompt("stt") == "fallback"
    assert failure_prompt("llm") == failure_prompt("tts") == "trouble"


class TextTTS(ScriptedTTS):
    """Audio that differs with the text (not a tone whose length alone does)."""

    async def synthesize(self, text: str, *, mulaw: bool):
        self.texts.append(text)
        yield (hashlib.sha256(text.encode()).digest() * 100)[: 40 * len(text)]


async def test_a_call_whose_llm_fails_hears_the_trouble_prompt(aiohttp_server, settings):
    llm = ScriptedLLM(error=StageError("llm", "upstream_error", "down"), times=1)
    server, p, app = await serve(aiohttp_server, phone_settings(settings), llm=llm, tts=TextTTS())
    report = await simulate_call(url(server), [OPEN, ADDRESS], auth_token=TOKEN, max_wait_s=8)
    trouble, fallback = app[PROMPTS].get("trouble"), app[PROMPTS].get("fallback")
    assert trouble and fallback and trouble != fallback
    assert "fallback-t1" in report.marks_echoed and trouble in report.heard and fallback not in report.heard
    assert any(m.startswith("t2s") for m in report.marks_echoed)


# ------------------------------------------------------------------ 6. health tells the truth about the server


async def _health(aiohttp_client, settings, llm):
    from bot.providers.registry import Providers
    from handlers.app import create_app

    app = create_app(settings, providers=Providers(stt=ScriptedSTT(), llm=llm, tts=ScriptedTTS()), embedded_prompt_fallback=False)
    return await aiohttp_client(app)


async def test_health_and_readiness_say_the_llm_server_is_down(aiohttp_client, settings):
    down = OpenAILLM(base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=1.0, profile=PROPERTY)
    client = await _health(aiohttp_client, settings, down)
    h = await (await client.get("/healthz")).json()
    assert h["status"] == "degraded" and h["stages"]["llm"]["ready"] is False
    assert any(p.startswith("llm: openai server down") for p in h["problems"]), h["problems"]
    r = await client.get("/readyz")
    assert r.status == 503 and "llm not ready" in (await r.json())["problems"]


async def test_a_chain_with_the_receptionist_stays_ready_but_degraded(aiohttp_client, aiohttp_server, settings):
    down = OpenAILLM(base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=1.0, profile=PROPERTY, takeover=False)
    chain = FailoverLLM([down, Receptionist(profile=PROPERTY)], 1.0, share=0.6, threshold=3, cooldown_s=30)
    client = await _health(aiohttp_client, settings, chain)
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200 and any(p.startswith("llm: openai server down") for p in body["problems"]), body


async def test_the_probe_is_cheap_cached_and_sees_the_server_come_back(aiohttp_client, aiohttp_server, settings):
    llm, state = await llm_at(aiohttp_server)
    client = await _health(aiohttp_client, settings, llm)
    for _ in range(5):
        h = await (await client.get("/healthz")).json()
        assert h["stages"]["llm"]["ready"] and h["stages"]["llm"]["servers"]["openai"]["up"]
    probes = [r for r in state.requests if r.path == "/v1/models"]
    assert len(probes) == 1  # one probe per ttl, however often the balancer asks
    assert not [r for r in state.requests if r.path.endswith("/chat/completions")]  # never a completion


# ------------------------------------------------------------------ 7. a long call in a small context


def long_history(n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        out.append({"role": "user", "content": f"Question number {i}: what about the parking, the bins and the lifts on floor {i}?"})
        if i % 5 == 2:
            out.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "get_hours", "arguments": '{"day": "today"}'}}]})
            out.append({"role": "tool", "tool_call_id": f"c{i}", "content": "Today we're open 9 AM to 5 PM."})
        out.append({"role": "assistant", "content": f"Answer {i}: the parking is behind the building and the bins go out on Tuesday."})
    return out


def test_trimming_keeps_whole_turns_from_the_newest_and_never_a_lone_tool_result():
    history = long_history(60) + [{"role": "user", "content": "and the newest question?"}]
    kept, left_out = trim(history, 600)
    assert kept[-1]["content"] == "and the newest question?" and left_out > 100
    assert kept[0]["role"] == "user" and tokens(kept) <= 600
    ids = {c["id"] for m in kept for c in m.get("tool_calls") or []}
    assert all(m["tool_call_id"] in ids for m in kept if m["role"] == "tool")
    assert [g[0]["content"] for g in turns(kept)] == [g[0]["content"] for g in turns(history)[-len(turns(kept)):]]
    huge = [{"role": "user", "content": "x" * 30000}]
    assert trim(huge, 100) == (huge, 0)  # the newest turn always goes


async def test_a_long_call_fits_a_4k_context_and_an_overflow_is_trimmed_harder(aiohttp_server, caplog):
    # the fake counts tokens more harshly (2 chars each) than the adapter's estimate (3)
    llm, state = await llm_at(aiohttp_server, context_tokens=4096, chars_per_token=2.0, reply="Behind the building.")
    conv = Conversation(call_id="CA1", messages=long_history(80) + [{"role": "user", "content": "where do I park?"}])
    with caplog.at_level(logging.WARNING, logger="bot.providers.openai"):
        text, _ = await said(llm, conv)
    assert text == "Behind the building."
    first, last = state.requests[0], state.requests[-1]
    assert len(state.requests) == 2 and len(last.messages) < len(first.messages) < len(conv.messages)
    assert last.messages[0]["role"] == "system" and last.messages[1]["role"] == "user"
    assert last.messages[-1] == {"role": "user", "content": "where do I park?"}
    assert any("context overflowed" in r.getMessage() for r in caplog.records)
    n = len(state.requests)
    conv.add_assistant(text)
    conv.add_user("thanks")
    await said(llm, conv)
    assert len(state.requests) == n + 1  # trimmed to what the server said from the start: no second 400
    await llm.close()


async def test_a_turn_that_cannot_fit_is_a_context_error_not_an_empty_result(aiohttp_server):
    llm, _ = await llm_at(aiohttp_server, context_tokens=1024)
    conv = conversation(MemoryStore(), "my question is " + "very " * 3000 + "long")
    with pytest.raises(StageError) as info:
        await said(llm, conv)
    assert info.value.code == "context_length" and info.value.retryable
    await llm.close()


# ------------------------------------------------------------------ 8. chat uses the whole chain


async def test_chat_fails_over_to_the_receptionist_like_a_call(tmp_path):
    env = {"LLM_PROVIDER": "openai,receptionist", "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1", "LLM_TIMEOUT": "2",
           "PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "chat", "--now", "2026-11-24T15:00",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env=env)
    out, err = await asyncio.wait_for(proc.communicate(b"what time do you open tomorrow\n"), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "[failover] answered by receptionist" in text and "Tomorrow, Wednesday, we're open 9 AM to 5 PM." in text


async def test_chat_speaks_the_sanitised_reply_from_a_junk_emitting_server(aiohttp_server, tmp_path):
    state = FakeBehaviour(reply="We&#39;re open <b>until five</b>.<|im_end|><|im_start|>user\nok", token_chars=3)
    server = await aiohttp_server(openai_app(state))
    env = {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": str(server.make_url("/v1")), "PATH": "/usr/bin:/bin",
           "DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "chat", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env=env)
    out, err = await asyncio.wait_for(proc.communicate(b"how late are you open?\n"), 60)
    assert proc.returncode == 0, err.decode()
    assert "bot: We're open until five." in out.decode()
    assert state.last.json["tool_choice"] == "auto"


# ------------------------------------------------------------------ a whole call against a llama-like server


async def test_a_call_against_a_llama_like_server_takes_the_message_and_speaks_clean_text(aiohttp_server, settings):
    """Tools need tool_choice, streamed tool turns fail after a 200, the text comes in
    three-character pieces with entities and template junk: the caller hears clean
    sentences, the message is saved through the tool, the history sent back is clean."""
    from bot.providers.openai_llm import OpenAILLM as LLM
    from tests.test_dialogue_calls import UTTERANCE, LengthSTT, saved

    state = FakeBehaviour(tools_need_choice=True, stream_tools="error_event", token_chars=3, script=[
        {"reply": "Sure, I can take a message. What&#39;s your name and number?<|im_end|><|im_start|>user\nAnn"},
        {"reply": "Thanks, Ann. I&#39;ll pass that on.", "tool_calls": [TAKE]},
        {"reply": "**Done**, your message is with the team. <b>Anything else?</b>"},
    ])
    fake = await aiohttp_server(openai_app(state))
    s = phone_settings(settings, openai_base_url=str(fake.make_url("/v1")), llm_provider="openai", llm_timeout=3.0, early_turn_ms=0)
    llm = LLM.from_settings(s, profile=PROPERTY, clock=lambda: TUESDAY_3PM)
    tts = ScriptedTTS(ms_per_char=3)
    stt = LengthSTT(long=["I'd like to leave a message for the landlord about my boiler",
                          "Ann Lee, 555 123 4567, the boiler is noisy"])
    server, _, app = await serve(aiohttp_server, s, stt=stt, llm=llm, tts=tts)
    report = await simulate_call(url(server), [UTTERANCE] * 2, auth_token=TOKEN, max_wait_s=10, quiet_s=0.5, gap_s=0.2)
    assert len(report.turns) == 2
    (message,) = await saved(app)
    assert (message.name, message.callback_number) == ("Ann Lee", "5551234567")
    spoken = " ".join(tts.texts)
    assert "What's your name and number?" in spoken and "Done, your message is with the team." in spoken
    assert not [j for j in JUNK if j in spoken], spoken
    history = json.dumps([m for r in state.requests for m in r.messages if m["role"] == "assistant"])
    assert not [j for j in JUNK if j in history.replace("take_message", "")], history  # the tool call itself is data
    assert all(r.json["tool_choice"] == "auto" for r in state.requests)
