"""Acting on live calls through the twilio SDK's REST client, against a wire fake."""

from __future__ import annotations

import asyncio

import pytest

from bot.carriers.twilio.control import TwilioRestControl
from bot.carriers.twilio.simulator import simulate_call
from tests.fakes.twilio_rest import RestBehaviour, twilio_rest_app
from tests.test_calls import OPEN, TOKEN, phone_settings, serve, url

pytestmark = pytest.mark.virtual_time  # whole calls in virtual time (tests/virtual_time.py)

AC = "AC" + "a" * 32
CA = "CA" + "b" * 32


async def _control(aiohttp_server, state: RestBehaviour, timeout: float = 5.0) -> TwilioRestControl:
    server = await aiohttp_server(twilio_rest_app(state))
    c = TwilioRestControl(AC, "rest-token", str(server.make_url("")).rstrip("/"), timeout=timeout)
    await c.start()
    return c


async def test_transfer_updates_the_live_call_with_dial(aiohttp_server):
    state = RestBehaviour()
    c = await _control(aiohttp_server, state)
    try:
        await c.transfer(CA, "+15550001111")
    finally:
        await c.close()
    (u,) = state.updates
    assert (u["account"], u["call"], u["auth"]) == (AC, CA, f"{AC}:rest-token")
    assert "<Dial>+15550001111</Dial>" in u["form"]["Twiml"]
    assert c.actions.items == {}  # type: ignore[attr-defined]  # REST worked: nothing left for the stream's end


async def test_hangup_completes_the_call(aiohttp_server):
    state = RestBehaviour()
    c = await _control(aiohttp_server, state)
    try:
        await c.hangup(CA)
    finally:
        await c.close()
    assert state.updates[0]["form"] == {"Status": "completed"}


@pytest.mark.parametrize("mode", ["500", "404", "hang"])
async def test_rest_failure_falls_back_to_the_stream_end(aiohttp_server, mode):
    state = RestBehaviour(mode=mode)
    c = await _control(aiohttp_server, state, timeout=0.5)
    t0 = asyncio.get_running_loop().time()
    try:
        await c.transfer(CA, "+15550001111")
    finally:
        await c.close()
    assert asyncio.get_running_loop().time() - t0 < 0.5 + 0.5
    # the <Connect action> request will dial instead
    assert "<Dial>+15550001111</Dial>" in (await c.after_stream(CA) or "")


async def test_dtmf_zero_transfers_over_rest(aiohttp_server, settings):
    state = RestBehaviour()
    rest = await aiohttp_server(twilio_rest_app(state))
    s = phone_settings(
        settings, transfer_number="+15550001111", twilio_account_sid=AC,
        twilio_base_url=str(rest.make_url("")).rstrip("/"),
    )
    server, p, app = await serve(aiohttp_server, s)
    report = await simulate_call(url(server), [OPEN], auth_token=TOKEN, dtmf={0: "0"}, max_wait_s=6)
    assert "end-transfer" in report.marks_echoed
    (u,) = state.updates
    assert u["call"] == report.call_sid and u["auth"] == f"{AC}:{TOKEN}"
    assert '<Dial timeout="25">+15550001111</Dial>' in u["form"]["Twiml"]  # the default profile rings 25 s
