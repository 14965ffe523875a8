"""The carrier table: CARRIERS names which carriers the app runs; each is one package with
one table line, and a name not in the table is a settings error naming the known ones."""

from __future__ import annotations

import importlib

import pytest

from bot.carriers import CARRIERS
from bot.carriers.registry import CARRIERS_KEY, build
from bot.carriers.twilio.control import StreamEndControl
from bot.control import LocalControl
from bot.settings import Settings, SettingsError
from tests.test_phone import login, phone_app

ENV = {"TWILIO_AUTH_TOKEN": "t" * 32}


def test_the_default_runs_twilio_and_the_browser():
    assert Settings.from_env(ENV).carriers == ("twilio", "browser")
    assert Settings.from_env({**ENV, "CARRIERS": " "}).carriers == ("twilio", "browser")


def test_names_are_read_trimmed_lower_case_and_once():
    assert Settings.from_env({**ENV, "CARRIERS": " Browser , twilio,browser,"}).carriers == ("browser", "twilio")


@pytest.mark.parametrize("raw", ["twilio,telnyx", "sip2", ",", "twilio;browser"])
def test_an_unknown_carrier_is_a_settings_error_naming_the_known_ones(raw):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**ENV, "CARRIERS": raw})
    msg = str(err.value)
    assert msg.startswith("CARRIERS=") and all(name in msg for name in CARRIERS)
    assert len(Settings.problems({**ENV, "CARRIERS": raw, "MAX_CALLS": "x"})) == 2  # listed with the others


def test_without_twilio_its_auth_token_is_not_required():
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
        Settings.from_env({})
    assert Settings.from_env({"CARRIERS": "browser"}).carriers == ("browser",)


def test_sip_listen_switches_the_sip_carrier_on_and_sip_without_it_is_an_error():
    on = Settings.from_env({**ENV, "SIP_LISTEN": "udp:127.0.0.1:5070", "SIP_ALLOW": "10.0.0.0/8"})
    assert on.carriers == ("twilio", "browser", "sip")
    assert Settings.from_env({"CARRIERS": "sip", "SIP_LISTEN": "tcp:0.0.0.0:5060", "SIP_ALLOW": "10.0.0.5"}).carriers == ("sip",)
    with pytest.raises(SettingsError, match="SIP_LISTEN is empty"):
        Settings.from_env({**ENV, "CARRIERS": "twilio,sip"})
    assert [c.name for c in build(on)] == ["twilio", "browser", "sip"]


def test_settings_built_in_code_with_an_unknown_name_fail_at_build(settings):
    with pytest.raises(SettingsError, match="unknown carrier 'pstn'"):
        build(settings.with_(carriers=("browser", "pstn")))


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_each_table_line_builds_a_carrier_of_that_name(settings, name):
    listen = (("udp", "127.0.0.1", 0),) if name == "sip" else ()  # SIP needs an address to listen on
    (made,) = build(settings.with_(carriers=(name,), sip_listen=listen))
    assert made.name == name and callable(made.install)
    assert importlib.import_module(CARRIERS[name]).carrier(settings).name == name


def routes(app) -> set[str]:
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


async def test_the_app_has_only_the_named_carriers_routes(aiohttp_client, settings):
    both, _ = phone_app(settings)
    assert {"/twilio/voice", "/twilio/media", "/phone", "/phone/ws"} <= routes(both)
    assert list(both[CARRIERS_KEY]) == ["twilio", "browser"]

    twilio_only, _ = phone_app(settings, carriers=("twilio",))
    assert "/twilio/media" in routes(twilio_only) and not any(r.startswith("/phone") for r in routes(twilio_only))

    browser_only, _ = phone_app(settings, carriers=("browser",))
    assert not any(r.startswith("/twilio") for r in routes(browser_only))
    client = await aiohttp_client(browser_only)
    assert (await client.post("/twilio/voice", data={"CallSid": "CA" + "0" * 32})).status == 404
    ready = await client.get("/readyz")  # counts the instance's call slots, with no Twilio admission in the app
    assert ready.status == 200 and (await ready.json())["live_calls"] == 0
    await login(client)
    assert (await client.get("/phone")).status == 200


async def test_each_carrier_gives_its_calls_a_control_once_started(aiohttp_client, settings):
    app, _ = phone_app(settings)
    await aiohttp_client(app)  # started: the store is open, Twilio's control made
    carriers = app[CARRIERS_KEY]
    assert isinstance(carriers["twilio"].control(app), StreamEndControl)  # no REST credentials: the <Connect action>
    assert isinstance(carriers["browser"].control(app), LocalControl)
