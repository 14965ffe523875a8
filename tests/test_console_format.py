"""How the console writes numbers, names, lengths and the latency axis for the owner."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from bot.profile import Profile, Transfer
from handlers.console_chart import axis
from handlers.console_format import Owner, length, person

US = Owner(ZoneInfo("America/New_York"), 1)
UK = Owner(ZoneInfo("Europe/London"), 44)


@pytest.mark.parametrize(("owner", "raw", "shown"), [
    (US, "+15558675309", "(555) 867-5309"),  # home country: as dialled at home
    (US, "5558675309", "(555) 867-5309"),  # a spoken callback number: no country code, the business's
    (US, "555-867-5309", "(555) 867-5309"),
    (US, "+14155550123", "(415) 555-0123"),
    (US, "+442079460123", "+44 20 7946 0123"),  # abroad: international
    (US, "+4915123456789", "+49 1512 3456789"),
    (US, "+61412345678", "+61 412 345 678"),
    (UK, "+442079460123", "020 7946 0123"),
    (UK, "02079460123", "020 7946 0123"),
    (UK, "+15558675309", "+1 555-867-5309"),
    (US, "anonymous", "number withheld"),
    (US, "Restricted", "number withheld"),
    (US, "", "unknown number"),
    (US, None, "unknown number"),
    (US, "browser", "softphone (browser)"),
    (US, "sip:+15551112222@trunk.example.com;transport=tls", "sip:+15551112222@trunk.example.com"),
    (US, "client:bob", "client:bob"),
    (US, "555123", "555123"),  # too short to be a number: as it was given
    (US, "12", "12"),
    (US, "+1 (555) 867-5309 ext. 12", "(555) 867-5309 ext. 12"),
])
def test_numbers_as_the_owner_dials_them(owner, raw, shown):
    assert owner.phone(raw) == shown


def test_the_business_country_comes_from_its_transfer_numbers():
    def profile(**numbers) -> Profile:
        return Profile(name="x", timezone="Europe/London", hours={}, address="", transfer=Transfer(**numbers))

    assert Owner.of(profile(front_desk="+442079460000")).country_code == 44
    assert Owner.of(profile(on_call="+61412345678")).country_code == 61
    assert Owner.of(profile(), transfer_number="+4930123456").country_code == 49
    assert Owner.of(profile()).country_code == 1  # none: North America
    assert Owner.of(profile()).zone == ZoneInfo("Europe/London")


@pytest.mark.parametrize(("name", "shown"), [
    ("the caller", "no name given"), ("The Caller", "no name given"), ("", "no name given"), (None, "no name given"),
    ("  ", "no name given"), ("caller", "no name given"), ("Sarah Johnson", "Sarah Johnson"), ("Callera Smith", "Callera Smith"),
])
def test_a_placeholder_is_never_shown_as_a_name(name, shown):
    assert person(name) == shown


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0 s"), (48.4, "48 s"), (59.6, "1 min"), (108, "1 min 48 s"), (600, "10 min"), (725, "12 min")])
def test_call_lengths(seconds, shown):
    assert length(seconds) == shown


@pytest.mark.parametrize("worst", [0, 1, 120, 499, 502, 999, 1000, 1001, 1388, 1500, 2600, 4000, 7400, 13000, 29000, 61000, 250000])
def test_latency_axis_in_round_steps_above_the_target(worst):
    top, step = axis(worst)
    assert step in (500, 1000, 2000, 5000, 10000, 20000, 30000, 60000)
    assert top % step == 0 and top / step <= 6 or step == 60000
    assert top > max(worst, 1000)  # every bar and the 1 s line fit under the top
