"""Issue 21 item 8: what a caller said never reaches the owner's terminal or browser with
its bidi or C1 control characters raw (U+202E, U+009B, ...): `bot messages` (text and
--json) and the console (pages and CSV) show them as escapes (bot/text_safety.py)."""

from __future__ import annotations

import json
import unicodedata

from bot.store import NewMessage
from bot.text_safety import clean, visible
from handlers.storage import STORE
from tests.test_cli_messages import run, seed  # noqa: F401 - the fixture
from tests.test_console import logged_in

HOSTILE = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\u061c", "\x9b", "\x85", "\x1b",
           "\u2028", "\u2029", "\ufeff", "\u200b", "\x00", "\x7f"]
NAME = "Eve" + "".join(HOSTILE) + "exe.gnp"


def raw_controls(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c not in "\n\r\t"]


def test_visible_escapes_every_unsafe_character_and_keeps_readable_text():
    out = visible(NAME + " José 😀")
    assert raw_controls(out) == [] and "\\u202e" in out and "\\x9b" in out and out.endswith("José 😀")
    assert visible("plain text") == "plain text"
    assert clean("a\r\nb\u202ec" + "x" * 50, 10) == "a bcxxxxxx"


def test_messages_json_and_text_print_no_raw_controls(tmp_path, run):  # noqa: F811
    seed(tmp_path, NewMessage(call_sid="CA9", caller="+15550001234", name=NAME, callback_number="5550001234",
                              about="call me\u202e back" + "\x9b31m"))
    for args in ((), ("--json",)):
        out = run(tmp_path, *args)
        assert out.returncode == 0 and raw_controls(out.stdout.replace("\n", "")) == [], args
    obj = json.loads(run(tmp_path, "--json").stdout.splitlines()[0])
    assert obj["name"].startswith("Eve\\u202e") and "\\x9b" in obj["about"]


async def test_console_pages_and_csv_show_controls_as_escapes(aiohttp_client, settings):
    client, _ = await logged_in(aiohttp_client, settings)
    await client.app[STORE].save_message(NewMessage(call_sid="CA9", caller="+15550001234", name=NAME,
                                                    callback_number="5550001234", about="about\u202eit"))
    for path in ("/console/messages", "/console/messages.csv"):
        text = await (await client.get(path)).text()
        assert raw_controls(text.replace("\n", "").replace("\r", "")) == [], path
        assert "Eve\\u202e" in text, path
