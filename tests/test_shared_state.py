"""What one call's requests must agree on, whichever process or instance answers each
(issue 20 items 1, 2, 10; issue 21 items 5, 7): the instance's shared call slots and
key buckets (bot/instance.py, real processes racing), the store's stream admissions and
<Connect action> answers (bot/store/shared.py, SQLite and PostgreSQL), a transfer left
by one instance and carried out by another, browser and phone calls under one
MAX_CALLS, and the drain's goodbye on a busy loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from pathlib import Path

import aiohttp

from bot.instance import InstanceState
from bot.providers.registry import Providers
from bot.server import drain
from bot.simulator import Dtmf, simulate_call
from bot.store.shared import CallGate
from bot.store.sql import SqlStore
from handlers import login_limit
from handlers.app import create_app
from handlers.state import CALLS
from handlers.stream_admission import ADMISSION
from tests.conftest import eventually
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.test_calls import OPEN, TOKEN, phone_settings, url
from tests.test_phone import login, phone_app

PUBLIC = "http://bot.example.test"  # both instances sit behind one address, as behind a balancer
FRONT_DESK = "+15550001111"


# ------------------------------------------------------------------ the instance's shared state


def _grab(path: str, worker: int, n: int, cap: int, out) -> None:
    state = InstanceState(Path(path), worker=worker)
    got = sum(state.take(f"w{worker}-{i}", f"CA{worker}-{i}", cap) for i in range(n))
    out.put(got)


def test_two_processes_never_take_more_than_max_calls_between_them(tmp_path):
    """Two real processes race for 120 slots each under MAX_CALLS=50: exactly 50 in all."""
    path = str(tmp_path / "instance.sqlite3")
    InstanceState(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(path, w, 120, 50, out)) for w in (0, 1)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(got) == 50 and InstanceState(Path(path)).used() == 50


def test_slots_reservations_and_a_dead_worker(tmp_path):
    now = [100.0]
    a = InstanceState(tmp_path / "i.sqlite3", worker=0, clock=lambda: now[0])
    b = InstanceState(tmp_path / "i.sqlite3", worker=1, clock=lambda: now[0])
    assert a.reserve("CA1", 30, cap=3) and a.reserve("CA2", 30, cap=3)
    assert a.reserve("CA1", 30, cap=3)  # the same webhook again holds the same slot
    assert b.used() == 2
    assert b.take("s-1", "CA1", cap=3)  # its stream, on the other worker, takes the reservation over
    assert a.used() == 2
    assert b.take("browser-1", "BR1", cap=3) and not a.take("s-2", "CA3", cap=3)  # full: 3 of 3
    assert not a.reserve("CA4", 30, cap=3)
    now[0] += 31  # CA2's stream never came: its reservation lapses
    assert a.used() == 2 and a.reserve("CA4", 30, cap=3)
    b.worker_gone(1)  # worker 1 died: its calls are over
    assert a.used() == 1
    a.worker_ready(0, 4242)
    assert b.ready_workers() == {0: 4242}


def test_wrong_key_limits_do_not_multiply_by_the_workers(tmp_path):
    """Two workers' limiters share one set of buckets: 10 wrong keys in all, not 10 each."""
    now = [0.0]
    limits = [login_limit.LoginLimit(clock=lambda: now[0], buckets=InstanceState(tmp_path / "i.sqlite3", worker=w)) for w in (0, 1)]
    for i in range(login_limit.PER_ADDRESS):
        assert limits[i % 2].retry_after("198.51.100.7") == 0
        limits[i % 2].failed("198.51.100.7")
    assert all(lim.retry_after("198.51.100.7") > 0 for lim in limits)
    assert limits[1].retry_after("198.51.100.8") == 0  # another address is not held up
    now[0] += login_limit.ADDRESS_REFILL_S
    assert limits[0].retry_after("198.51.100.7") == 0  # one more after the refill, on any worker


# ------------------------------------------------------------------ the store: across instances


async def test_a_call_sid_is_admitted_once_and_an_action_is_taken_once(tmp_path, db_url):
    now = [1000.0]
    stores = [await SqlStore.open(database_url=db_url, data_dir=tmp_path) for _ in range(2)]
    try:
        a, b = (CallGate(s.engine, ttl_s=300, clock=lambda: now[0]) for s in stores)
        results = await asyncio.gather(*(g.admit_stream("CA" + "1" * 32) for g in (a, b, a, b)))
        assert sorted(results) == [False, False, False, True]  # one winner, whichever instance
        assert await b.stream_admitted("CA" + "1" * 32) and not await b.stream_admitted("CA" + "2" * 32)
        await a.put_action("CA" + "1" * 32, "<Response><Dial>+15550001111</Dial></Response>")
        taken = await asyncio.gather(b.take_action("CA" + "1" * 32), a.take_action("CA" + "1" * 32))
        assert sorted(taken, key=str) == ["<Response><Dial>+15550001111</Dial></Response>", None]
        await a.put_action("CA" + "3" * 32, "<Response><Hangup/></Response>")
        now[0] += 301  # never asked for: it expires
        assert await b.take_action("CA" + "3" * 32) is None and await a.pending_count() == 0
    finally:
        for s in stores:
            await s.close()


async def two_instances(aiohttp_server, settings, **kw):
    """Two apps on one store (SQLite in one DATA_DIR) behind one public address."""
    out = []
    for _ in range(2):
        s = phone_settings(settings, public_url=PUBLIC, **kw)
        app = create_app(s, providers=Providers(ScriptedSTT(), ScriptedLLM(), ScriptedTTS()), embedded_prompt_fallback=False)
        out.append((await aiohttp_server(app), app))
    return out


async def signed_post(http, base: str, path: str, form: dict) -> tuple[int, str]:
    from twilio.request_validator import RequestValidator

    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)
    async with http.post(base + path, data=form, headers={"X-Twilio-Signature": sig}) as r:
        return r.status, await r.text()


async def test_a_transfer_left_by_one_instance_is_carried_out_by_another(aiohttp_server, settings, caplog):
    caplog.set_level(logging.INFO)
    (sa, a), (sb, b) = await two_instances(aiohttp_server, settings, transfer_number=FRONT_DESK)
    # webhook on A, websocket on B, <Connect action> on A: each a connection of its own
    report = await simulate_call(url(sa), [OPEN, Dtmf("0")], public_url=PUBLIC, auth_token=TOKEN, separate_connections=True,
                                 stream_to=url(sb), action_to=url(sa), max_wait_s=8)
    assert not report.rejected and report.greeting_ms is not None and report.hung_up_by_bot
    assert f">{FRONT_DESK}</Dial>" in report.action_twiml  # the caller is put through
    await eventually(lambda: not b[CALLS])
    async with aiohttp.ClientSession() as http:
        # the webhook replayed on either instance: no second stream for that call
        for base in (url(sa), url(sb)):
            status, twiml = await signed_post(http, base, "/twilio/voice", {"CallSid": report.call_sid, "From": "+15550001234"})
            assert status == 200 and "<Stream" not in twiml and "<Hangup" in twiml
        # an action request for a call no process knows: logged, and the caller is told and put through
        status, twiml = await signed_post(http, url(sb), "/twilio/after", {"CallSid": "CA" + "9" * 32, "CallStatus": "in-progress"})
        assert status == 200 and "<Say>" in twiml and f">{FRONT_DESK}</Dial>" in twiml
    assert any(r.getMessage() == "connect action for an unknown call" for r in caplog.records)


async def test_an_unknown_action_without_a_front_desk_is_an_apology_and_a_hangup(aiohttp_server, settings):
    (sa, _a), _ = await two_instances(aiohttp_server, settings)
    async with aiohttp.ClientSession() as http:
        status, twiml = await signed_post(http, url(sa), "/twilio/after", {"CallSid": "CA" + "8" * 32, "CallStatus": "in-progress"})
        assert status == 200 and "<Say>" in twiml and "<Hangup" in twiml
        _, twiml = await signed_post(http, url(sa), "/twilio/after", {"CallSid": "CA" + "8" * 32, "CallStatus": "completed"})
        assert "<Say>" not in twiml  # the caller hung up: nobody to tell


# ------------------------------------------------------------------ browser and phone: one MAX_CALLS


async def test_browser_and_phone_calls_share_max_calls(aiohttp_client, settings):
    app, _ = phone_app(settings, max_calls=1)
    client = await aiohttp_client(app)
    await login(client)
    browser = await client.ws_connect("/phone/ws")
    await browser.receive()  # the browser call is up
    r = await client.post("/twilio/voice", data={"CallSid": "CA" + "7" * 32, "From": "+15550001234"})
    assert "<Stream" not in await r.text()  # the phone call hears busy
    r = await client.get("/readyz")
    assert r.status == 503 and (await r.json())["live_calls"] == 1  # and readiness says so
    await browser.close()
    await eventually(lambda: app[ADMISSION].used == 0)
    r = await client.post("/twilio/voice", data={"CallSid": "CA" + "6" * 32, "From": "+15550001234"})
    assert "<Stream" in await r.text()


# ------------------------------------------------------------------ the drain's goodbye


async def test_every_caller_hears_the_whole_goodbye_even_mid_sentence_on_a_busy_loop(aiohttp_server, settings):
    """Issue 20.10: callers mid-sentence on a busy worker heard silence, then the hang-up."""
    goodbye = "Thank you for calling, we are closing this line for maintenance now, please call again in a few minutes. " * 2
    s = phone_settings(settings, goodbye_text=goodbye)
    tts = ScriptedTTS(ms_per_char=25)  # a long reply: callers are mid-sentence at the drain; a ~5 s goodbye
    app = create_app(s, providers=Providers(ScriptedSTT(), ScriptedLLM(), tts), embedded_prompt_fallback=False)
    server = await aiohttp_server(app)
    calls = [asyncio.create_task(simulate_call(url(server), [OPEN, OPEN], auth_token=TOKEN, max_wait_s=30, gap_s=5))
             for _ in range(3)]
    await eventually(lambda: len(app[CALLS]) == 3 and all(c.turn_no >= 1 for c in app[CALLS].values()), within_s=30)
    await asyncio.sleep(0.3)  # the replies are playing

    async def busy_loop() -> None:  # a worker busy with other calls: the loop is held 30 ms in every 40
        while True:
            time.sleep(0.03)  # noqa: ASYNC251 - blocking the loop is the point
            await asyncio.sleep(0.01)

    hog = asyncio.create_task(busy_loop())
    try:
        left = await drain(app, 0.0)
        # the server closes every socket right after the drain: by then each goodbye must have been heard
        still_live = len(app[CALLS])
        reports = await asyncio.gather(*calls)
    finally:
        hog.cancel()
    assert left == 3 and still_live == 0
    for r in reports:
        assert r.clears >= 1  # it was cut mid-sentence ...
        assert "end-goodbye" in r.marks_echoed and r.hung_up_by_bot  # ... and heard all of the goodbye before the hang-up
