"""python -m bot test: a passing scenario file exits 0, a failing one exits 1 naming what
differed, a bad file exits 2 with every problem listed (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSINESS = REPO / "examples" / "business" / "property-office.toml"


def run(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    f = tmp_path / "s.toml"
    f.write_text(f'business = "{BUSINESS}"\nnow = "2026-12-08T21:30"\ncaller = "+15551230000"\n' + text)
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "var"), "LLM_PROVIDER": "receptionist"}
    return subprocess.run([sys.executable, "-m", "bot", "test", str(f)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


PASSING = '''
[[scenario]]
name = "message"
says = ["hi this is mark davis, call me back about my lease, 555 867 5309", { say = "yes", reply = "passed your message on" }]
message = { name = "Mark Davis", callback_number = "5558675309", about = "lease", complete = true }
hangup = false

[[scenario]]
name = "emergency"
says = ["a pipe burst and the kitchen is flooding"]
transfer = "emergency"
message = false
'''

FAILING = '''
[[scenario]]
name = "wrong expectations"
says = ["hi this is mark davis, call me back about my lease, 555 867 5309", "yes"]
reply = ["we are open all night"]
message = { name = "Mark Davies", callback_number = "5558675300" }
transfer = "front_desk"

[[scenario]]
name = "fine"
says = ["where is your office"]
reply = ["Maple Street"]
'''


def test_a_passing_file_exits_zero(tmp_path):
    r = run(tmp_path, PASSING)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS  message" in r.stdout and "PASS  emergency" in r.stdout and "2 passed, 0 failed" in r.stdout


def test_a_failing_file_exits_one_and_says_what_differed(tmp_path):
    r = run(tmp_path, FAILING)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "FAIL  wrong expectations" in out and "PASS  fine" in out and "1 passed, 1 failed" in out
    assert "/we are open all night/" in out
    assert "message name: expected 'Mark Davies', got 'Mark Davis'" in out
    assert "message callback_number: expected '5558675300', got '5558675309'" in out
    assert "transfer: expected front_desk, got none" in out
    assert "5558675309" not in out.split("[message]")[-1]  # the transcript masks numbers


def test_a_bad_file_lists_every_problem(tmp_path):
    r = run(tmp_path, '''
[[scenario]]
name = "bad"
says = [{ dtmf = "12x" }, ""]
reply = ["(unclosed"]
hangup = "yes"
colour = "blue"
''')
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for what in ("dtmf: expected keys", "empty line", "not a valid regular expression", "hangup: expected true or false", "unknown key 'colour'"):
        assert what in r.stderr, r.stderr
    r = run(tmp_path, "not toml [")
    assert r.returncode == 2 and "not valid TOML" in r.stderr and "Traceback" not in r.stderr


async def test_the_llm_at_openai_base_url_is_tested_through_its_tools(aiohttp_server, tmp_path):
    """The configured dialogue is the LLM (the OpenAI wire fake here, with the real SDK): its
    take_message tool call is the message checked, and a saved message is not kept again as
    an incomplete one."""
    import asyncio
    import json
    import os

    from tests.fakes.cloud import FakeBehaviour, openai_app

    take = json.dumps({"name": "Ann Lee", "callback_number": "555-123-4567", "about": "the boiler is noisy", "urgent": False})
    state = FakeBehaviour(script=[
        {"reply": "Sure. May I have your name and a number to call you back on?"},
        {"reply": "", "tool_calls": [("take_message", take)]},
        {"reply": "Thanks Ann, I've passed your message on."},
    ])
    server = await aiohttp_server(openai_app(state))
    f = tmp_path / "llm.toml"
    f.write_text(f'business = "{BUSINESS}"\nnow = "2026-12-08T21:30"\n[[scenario]]\nname = "llm message"\n'
                 'says = ["i want to leave a message about the boiler", "ann lee, 555 123 4567"]\n'
                 'reply = ["passed your message on"]\n'
                 'message = { name = "Ann Lee", callback_number = "5551234567", about = "boiler", complete = true }\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(tmp_path / "var"), "LLM_PROVIDER": "openai",
           "OPENAI_BASE_URL": str(server.make_url("/v1")), "OPENAI_API_KEY": "sk-test", "LLM_TIMEOUT": "5"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "test", str(f), cwd=REPO, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode() + err.decode()
    assert "(openai," in out.decode() and "PASS  llm message" in out.decode() and "1 passed, 0 failed" in out.decode()
    assert any(m.get("role") == "tool" for r in state.requests for m in r.messages)
