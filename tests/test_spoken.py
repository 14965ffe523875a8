"""bot/spoken.py on its own: what a model says, however its text is cut into deltas, comes
out as what a receptionist would say aloud; plain replies pass untouched."""

from __future__ import annotations

import itertools

import pytest

from bot.settings import DEFAULT_SYSTEM_PROMPT
from bot.spoken import SpokenText, clean, speakable

TOOLS = ("take_message", "get_hours", "transfer_call", "end_call")
INSTRUCTIONS = (DEFAULT_SYSTEM_PROMPT,
                "To take a message, ask for the caller's name, a callback number (read it back) and what it is about, then call "
                "take_message; only say it was passed on once it succeeds.")

# Replies a receptionist model should give, which must come through word for word.
PLAIN = [
    "We open at nine tomorrow morning.",
    "We're open Monday to Friday, 9 AM to 5 PM; Saturday, 10 AM to 2 PM.",
    "Sure, I can take a message. May I have your name?",
    "Thanks, Ann. I have your number as 555 123 4567. Is that right?",
    "The office is at 120 Maple Street, on the corner of Elm Road.",
    "I'm sorry, we're closed on Christmas Day.",
    "Rent is due on the first of the month, and there's a $25 late fee after the fifth.",
    "Dr. Patel sees patients from 8:30 until noon.",
    "If this is an emergency, please hang up and call 911.",
    "I'll put you through to the front desk now.",
    "Packages are held at the front desk for up to two weeks.",
    "That's everything on my side. Is there anything else I can help with?",
    "Okay! Have a good evening.",
    "Yes, the car park is behind the building; visitors can use bays 1 to 4.",
    "Our email is office at maple property dot com.",
    "It's 3 PM on Tuesday, so we're open for another two hours.",
    "No problem, I won't take a message.",
    "Let me check that for you: we're closed today, but open tomorrow at nine.",
    "I can't help with that myself, but I can take a message and have the team call you back.",
    "Hmm, I'm not sure about that one. Would you like to leave a message?",
]

# How a model (or its server's template) wraps or spoils a reply; {r} is the reply.
SPOILED = [
    ("<|im_start|>assistant\n{r}<|im_end|>", True),
    ("{r}<|im_end|>\n<|im_start|>user\nthanks", True),
    ("{r}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nok", True),
    ("{r}</s>[INST] and tomorrow? [/INST]", True),
    ("{r}<end_of_turn>\n<start_of_turn>user\nbye", True),
    ("{r}\nUser: thanks\nAssistant: You're welcome.", True),
    ("{r}\n\nCaller: ok bye", True),
    ("Assistant: {r}", False),
    ("<b>{r}</b>", False),
    ("<p>{r}</p>\n", False),
    ("{r} 😊", False),
    ('{r} {{"name": "end_call", "arguments": {{}}}}', False),
    ("{r}\n<tool_call>\n{{\"name\": \"get_hours\", \"arguments\": {{\"day\": \"today\"}}}}\n</tool_call>", False),
]


def streamed(text: str, piece: int) -> tuple[str, SpokenText]:
    s = SpokenText(tool_names=TOOLS, instructions=INSTRUCTIONS)
    out = "".join(s.feed(text[i : i + piece]) for i in range(0, len(text), piece)) + s.flush()
    return out.strip(), s


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 8, 13, 10_000])
def test_plain_replies_pass_word_for_word_however_they_are_cut(piece):
    for reply in PLAIN:
        out, s = streamed(reply, piece)
        assert out == reply and not s.stopped and not s.dropped, (reply, out)


@pytest.mark.parametrize(("wrap", "stops"), SPOILED)
@pytest.mark.parametrize("piece", [1, 3, 7, 10_000])
def test_spoiled_replies_come_out_as_the_reply(wrap, stops, piece):
    for reply in PLAIN:
        out, s = streamed(wrap.format(r=reply), piece)
        assert out == reply, (wrap, piece, out)
        assert s.stopped == stops


def test_entities_are_decoded_and_never_compound():
    assert speakable("We&#39;re open &amp; happy to help.") == "We're open & happy to help."
    assert speakable("We&amp;#39;re open.") == "We're open."
    assert speakable("We&amp;amp;#39;re open.") == "We're open."
    assert speakable("Tom &lt;3 Jerry") == "Tom 3 Jerry"  # decoded markup is not read as markup
    once = speakable("It&#39;s fine.")
    assert speakable(once) == once  # stored text, sent again, stays the same


def test_markdown_lists_and_links_read_as_speech():
    md = "## Opening hours\n\n* **Monday**: 9 to 5\n* _Tuesday_: 9 to 5\n1. Call us\n2) Or visit [our site](https://x.example/a)."
    assert speakable(md) == "Opening hours. Monday: 9 to 5. Tuesday: 9 to 5. Call us. Or visit our site."
    assert speakable("See https://www.maple-property.com/contact?ref=1 for the form.") == "See maple-property dot com for the form."


def test_the_instructions_read_out_are_dropped_wherever_they_start():
    for head in ("", "Hello! "):
        out, s = streamed(head + DEFAULT_SYSTEM_PROMPT + " We open at nine.", 4)
        assert out == (head + "We open at nine.").strip() and s.dropped
    out, _ = streamed("To take a message, I'll need your name and number.", 3)  # close to the instructions, not them
    assert out == "To take a message, I'll need your name and number."


def test_tool_names_as_text_drop_their_clause_only():
    assert speakable("Sure. I'll call take_message for you. Anything else?", tool_names=TOOLS) == "Sure. Anything else?"
    assert speakable("functions.transfer_call({})\nPutting you through.", tool_names=TOOLS) == "Putting you through."


def test_a_cut_reply_ends_at_its_last_whole_sentence():
    s = SpokenText()
    out = s.feed("We open at nine. The lifts were redone last year and the lob")
    assert (out + s.flush(whole_only=True)).strip() == "We open at nine. The lifts were redone last year and the lob"[:16]
    s = SpokenText()
    assert (s.feed("Just a fragment with no end") + s.flush(whole_only=True)).strip() == "Just a fragment with no end"


def test_an_unclosed_construct_is_let_go_past_its_bound():
    text = "We open at nine { and this brace never closes " + "word " * 200 + "end."
    out, _ = streamed(text, 5)
    assert out.startswith("We open at nine") and out.endswith("end.")


def test_clean_is_idempotent_on_everything_it_produces():
    for reply, (wrap, _) in itertools.product(PLAIN, SPOILED):
        once = clean(wrap.format(r=reply))
        assert clean(once) == once
