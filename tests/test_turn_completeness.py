"""bot/turn_completeness.py: the words-only judgement of whether a caller's turn is over."""

from __future__ import annotations

import pytest

from bot.turn_completeness import Completeness, Verdict, Waits, judge, silence_ms

C, H, X = Completeness.COMPLETE, Completeness.HOLD, Completeness.INCOMPLETE  # X: cannot end here

CASES = [
    # complete turns: answer at the normal silence
    ("What time do you open tomorrow?", C),
    ("What time do you open tomorrow morning?", C),
    ("I need to speak to a real person, please.", C),
    ("Can you tell me your address?", C),
    ("Yes.", C),
    ("No.", C),
    ("I want to cancel my appointment on Friday.", C),
    ("My package was supposed to arrive yesterday, but it never came.", C),
    ("Hi, I'd like to leave a message for the billing department.", C),
    ("Hello? Is anyone there?", C),
    ("No, that's all. Thank you, goodbye.", C),
    ("My name is Sarah Johnson and my number is five five five, two one three, four four six seven.", C),
    ("my number is 555 213 4467", C),
    ("Call me back on 5552134467.", C),
    ("I think so.", C),
    ("I don't think so", C),
    ("I hope so.", C),
    ("Yes I am.", C),
    ("Yes, it is.", C),
    ("No, it's not.", C),
    ("Yes you can.", C),
    ("What is this about?", C),
    ("Who am I speaking to?", C),
    ("Where are you located at?", C),
    ("Can you call me back?", C),
    ("I'll hold on.", C),
    ("Okay, thanks.", C),
    ("That's all I need.", C),
    ("Can you help me?", C),
    ("Where is it?", C),
    ("I'd like that.", C),
    ("Repeat that please", C),
    ("Goodbye.", C),
    ("Is this the dentist?", C),
    # caller likely to go on: wait a little longer
    ("Hello?", H),
    ("Hello.", H),
    ("Hi there.", H),
    ("Hey, hello?", H),
    ("Good morning.", H),
    ("No, that's all.", H),
    ("That's it.", H),
    ("No thank you", H),
    ("My name is Sarah Johnson.", H),
    ("Hi, this is Tom.", H),
    ("Can you tell me", H),
    ("Could you send me", H),
    # cannot end here: wait the long silence
    ("", X),
    ("   ", X),
    ("My name is Sarah and", X),
    ("I called yesterday but", X),
    ("I was wondering if", X),
    ("So", X),
    ("Um", X),
    ("I need to, um", X),
    ("I'd like to book, uh", X),
    ("My package was supposed to arrive yesterday,", X),
    ("I'd like to leave a message for the", X),
    ("I want to talk to", X),
    ("Can I speak with", X),
    ("It's about my", X),
    ("My number is", X),
    ("My number is 555", X),
    ("My number is five five five, two one three", X),
    ("my phone number is 555-213", X),
    ("You can reach me at double five five", X),
    ("I'm", X),
    ("That's", X),
    ("I'd like", X),
    ("I want", X),
    ("I need", X),
    ("Well I", X),
    ("and then we", X),
    ("The reason I'm calling is", X),
    ("The appointment was for...", X),
    ("I'm calling because", X),
    ("I was going to ask if", X),
]


@pytest.mark.parametrize("text,state", CASES)
def test_words(text: str, state: Completeness) -> None:
    v = judge(text)
    assert v.state is state, f"{text!r}: {v}"
    assert v.reason


def test_many_cases_cover_all_states() -> None:
    assert {s for _, s in CASES} == {C, H, X}
    assert len(CASES) >= 60


def test_curly_apostrophes_and_case() -> None:
    assert judge("THAT\u2019S").state is X
    assert judge("NO, THAT\u2019S ALL.").state is H


@pytest.mark.parametrize("text,prefix_state", [
    ("Hello? Is anyone there?", H),  # "Hello?"
    ("No, that's all. Thank you, goodbye.", H),  # "No, that's all."
    ("My name is Sarah Johnson and my number is five five five, two one three, four four six seven.", X),
])
def test_pause_samples_prefix_waits_whole_sentence_does_not(text: str, prefix_state: Completeness) -> None:
    """The samples of examples/callers_pauses: cut at their first pause, the words say
    wait; whole, they say answer."""
    import json
    from pathlib import Path

    manifest = json.loads((Path(__file__).resolve().parents[1] / "examples" / "callers_pauses" / "manifest.json").read_text())
    pieces = next(m["pieces"] for m in manifest if m["text"] == text)
    cut = pieces[0]["text"] if prefix_state is not X else " ".join(p["text"] for p in pieces[:2])
    assert judge(cut).state is prefix_state
    assert judge(text).state is C


def test_silence_ms() -> None:
    w = Waits(hold_ms=900, incomplete_ms=1400)
    assert silence_ms(judge("What time do you open?"), 300, w) == 300
    assert silence_ms(judge("Hello?"), 300, w) == 900
    assert silence_ms(judge("My name is Sarah and"), 300, w) == 1400
    # never shorter than the normal silence
    assert silence_ms(judge("Hello?"), 1000, w) == 1000
    assert silence_ms(judge("and"), 2000, w) == 2000


def test_audio_model_combines_but_never_overrides_dangling_words() -> None:
    assert judge("I'd like to leave a message.", audio_complete=0.05).state is H
    assert judge("I'd like to leave a message.", audio_complete=0.5).state is C
    assert judge("Hello?", audio_complete=0.95).state is C
    assert judge("Hello?", audio_complete=0.5).state is H
    assert judge("My name is Sarah and", audio_complete=0.99).state is X
    assert isinstance(judge("x", audio_complete=0.1), Verdict)
