"""The bundled example businesses: every file in examples/business loads and has each FAQ in
callers' words and its emergencies described, and the plumbing and
heating firm (written from the README's business-file section alone) has what its owner
wrote and its scenario file runs through ``python -m bot test``. The scenarios the
receptionist does not pass yet are listed (not hidden): they are the understanding's open
problems, not the file's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.profile import load_profile
from bot.providers.receptionist import Receptionist
from bot.scenarios import load_suite, run_scenario

REPO = Path(__file__).resolve().parents[1]
BUSINESSES = sorted((REPO / "examples" / "business").glob("*.toml"))
PLUMBING = REPO / "examples" / "business" / "plumbing-heating.toml"
PLUMBING_SCENARIOS = REPO / "examples" / "scenarios" / "plumbing-heating.toml"
PROFILE = load_profile(PLUMBING)  # one object: the receptionist embeds its exemplars once per profile

# Scenarios the receptionist still fails, with why.
KNOWN_FAILURES = {
    "a sales call is turned away without a message":
        "a marketing pitch worded without the sales cues gets the out-of-scope answer, not the sales one",
}


@pytest.mark.parametrize("path", BUSINESSES, ids=[p.stem for p in BUSINESSES])
def test_every_example_business_loads(path):
    profile = load_profile(path)
    assert profile.name and profile.address and profile.faqs
    assert all(f.answer for f in profile.faqs)


@pytest.mark.parametrize("path", BUSINESSES, ids=[p.stem for p in BUSINESSES])
def test_every_faq_is_asked_in_callers_words(path):
    """Each FAQ has the handful of ways callers ask it that an owner would write down (8-20),
    the emergencies are described in many situations, and no phrasing is filed twice (under
    two FAQs, or as an FAQ and an emergency, it would pull callers both ways)."""
    profile = load_profile(path)
    assert all(8 <= len(f.examples) <= 20 for f in profile.faqs), [(f.question, len(f.examples)) for f in profile.faqs]
    assert len(profile.emergency.situations) >= 15
    phrasings = [s.lower() for f in profile.faqs for s in (f.question, *f.examples)]
    phrasings += [s.lower() for s in profile.emergency.situations]
    assert sorted({s for s in phrasings if phrasings.count(s) > 1}) == []


def test_the_plumbing_file_has_what_its_owner_wrote():
    p = PROFILE
    assert str(p.tz) == "Europe/London"
    assert p.transfer.on_call and p.transfer.front_desk
    assert p.emergency.transfer == "on_call" and len(p.emergency.situations) >= 15
    assert "0800 111 999" in p.emergency.danger_say and "call 999" in p.emergency.danger_say
    assert "postcode" in p.unit_question
    assert 8 <= len(p.faqs) <= 12 and all(len(f.examples) >= 3 for f in p.faqs)
    assert set(p.closures.values()) >= {"Christmas Day", "Boxing Day"}


def _cases():
    suite = load_suite(PLUMBING_SCENARIOS, PROFILE.tz)
    assert suite.business and Path(suite.business).resolve() == PLUMBING.resolve()
    for sc in suite.scenarios:
        marks = [pytest.mark.xfail(reason=KNOWN_FAILURES[sc.name], strict=False)] if sc.name in KNOWN_FAILURES else []
        yield pytest.param(sc, id=sc.name, marks=marks)


@pytest.mark.parametrize("scenario", list(_cases()))
async def test_plumbing_scenarios(scenario):
    desk = Receptionist(profile=PROFILE, clock=lambda: scenario.now)
    await desk.start()  # by meaning, as `bot test` and a call read it (once per process)
    out = await run_scenario(scenario, desk)
    assert out.passed, (out.problems, out.replies)


def test_the_plumbing_scenario_file_runs_through_bot_test(tmp_path):
    """The file names its business relative to itself; every scenario is reported; all but the
    known failures pass; the exit code is 1 exactly when one failed."""
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "var"), "LLM_PROVIDER": "receptionist"}
    r = subprocess.run([sys.executable, "-m", "bot", "test", str(PLUMBING_SCENARIOS)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "plumbing-heating.toml" in r.stdout
    results = dict((name, verdict) for verdict, name in re.findall(r"^  (PASS|FAIL)  (.+)$", r.stdout, re.M))
    names = [sc.name for sc in load_suite(PLUMBING_SCENARIOS, PROFILE.tz).scenarios]
    assert sorted(results) == sorted(names)
    unexpected = [n for n, v in results.items() if v == "FAIL" and n not in KNOWN_FAILURES]
    assert not unexpected, r.stdout
    assert (r.returncode == 1) == ("FAIL" in results.values())
