"""The turn rules at their exact edges: the survivors of a mutation run over the turn
controller (issue 23, `mutmut run` with the [tool.mutmut] section of pyproject.toml).
Each test pins a number or a condition that a changed line would move: the settings
each option comes from, the DTMF cap and flush time, barge-in needing a voice, the
counters, and the times decisions carry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.turns import BargeIn, EndCall, Phase, Reprompt, StartSpeculative, StartTurn, TurnController, TurnOptions
from bot.turns.controller import DTMF_FLUSH_MS, MAX_DTMF_DIGITS
from tests.test_turn_controller import FRAME, Script


def settings(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        end_silence_ms=710, early_turn_ms=310, min_speech_ms=210, barge_in_ms=130, reprompt_after_s=7.5,
        max_reprompts=3, speculative_llm=False, transfer_number="+15550001111", max_turn_s=12.5,
        turn_completeness=True, turn_complete_ms=450, speculative_lead_ms=640,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_every_option_comes_from_its_own_setting():
    o = TurnOptions.from_settings(settings())
    assert (o.end_silence_ms, o.early_turn_ms, o.min_speech_ms, o.barge_in_ms) == (710, 310, 210, 130)
    assert (o.reprompt_after_s, o.max_reprompts, o.speculative_llm) == (7.5, 3, False)
    assert (o.max_turn_ms, o.completeness, o.complete_ms, o.spec_lead_ms) == (12_500, True, 450, 640)
    assert o.can_transfer is True


def test_transfer_follows_the_number_given_over_the_settings_one():
    assert TurnOptions.from_settings(settings(transfer_number=""), transfer_number="+15550002222").can_transfer is True
    assert TurnOptions.from_settings(settings(), transfer_number="").can_transfer is False
    assert TurnOptions.from_settings(settings(transfer_number="")).can_transfer is False
    assert TurnOptions.from_settings(settings(turn_complete_ms=0)).complete_ms is None


def test_the_controller_starts_quiet_and_counts_from_zero():
    c = TurnController(TurnOptions())
    assert (c.phase, c.history, c.turn_no, c.barge_ins, c.reprompts, c.dtmf_dropped) == (
        Phase.GREETING, [Phase.GREETING], 0, 0, 0, 0
    )
    assert not c.live and not c.speculating and not c.over


# ---------------------------------------------------------------- the detector follows the options


def test_barge_in_takes_exactly_barge_in_ms_of_speech():
    for ms in (60, 200):
        s = Script(TurnOptions(barge_in_ms=ms), greeting_ms=5000)
        s.quiet(200).talk(ms - 20)
        assert s.of(BargeIn) == [], ms
        s.talk(20)
        (t, _), = s.of(BargeIn)
        assert t == pytest.approx(0.2 + ms / 1000), ms


def test_the_early_silence_and_the_end_silence_follow_the_options():
    s = Script(TurnOptions(early_turn_ms=500, end_silence_ms=900)).talk(1000).quiet(1200)
    (t_spec, _), = s.of(StartSpeculative)
    assert t_spec == pytest.approx(1.5)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]
    assert s.log[1][0] == pytest.approx(1.9)


def test_min_speech_is_the_options_not_a_default():
    s = Script(TurnOptions(min_speech_ms=600, early_turn_ms=0)).talk(500).quiet(1000)
    assert s.log == []  # 500 ms is noise at a 600 ms minimum
    s.talk(700).quiet(1000)
    assert s.kinds() == ["StartTurn"]


# ---------------------------------------------------------------- barge-in needs a voice


def test_over_the_bot_unvoiced_noise_does_not_barge_in_but_a_voice_does():
    s = Script(greeting_ms=10_000)
    for _ in range(50):  # a second of "speech" by energy that is not a voice (traffic, wind)
        s.t += 0.02
        s._take(s.c.on_frame(FRAME, True, s.t, voiced=lambda: False))
    assert s.of(BargeIn) == [] and s.c.phase is Phase.GREETING
    s.quiet(100)
    for _ in range(10):
        s.t += 0.02
        s._take(s.c.on_frame(FRAME, True, s.t, voiced=lambda: True))
    assert len(s.of(BargeIn)) == 1 and s.c.phase is Phase.LISTENING


def test_while_listening_the_caller_needs_no_voice_check():
    s = Script(TurnOptions(early_turn_ms=0))
    for _ in range(30):
        s.t += 0.02
        s._take(s.c.on_frame(FRAME, True, s.t, voiced=lambda: False))
    s.quiet(800)
    assert s.kinds() == ["StartTurn"]


# ---------------------------------------------------------------- counters


def test_turns_and_barge_ins_count_up():
    s = Script(reply_ms=4000)
    for n in (1, 2, 3):
        s.talk(600).quiet(800)
        assert s.c.turn_no == n
        s.c.bot_speaking()
        s.talk(200)
        assert s.c.barge_ins == n
        s.quiet(100)


def test_after_a_turn_the_reprompts_count_from_one_again():
    s = Script(reply_ms=500)
    s.quiet(8000)
    assert [r.n for _, r in s.of(Reprompt)] == [1]
    s.quiet(2000).talk(600).quiet(800).quiet(600)
    s.quiet(8000)
    assert [r.n for _, r in s.of(Reprompt)] == [1, 1]


# ---------------------------------------------------------------- DTMF


def test_the_dtmf_entry_keeps_exactly_the_cap_and_counts_every_digit_dropped():
    s = Script()
    for i in range(MAX_DTMF_DIGITS + 3):
        s.dtmf(str(i % 10))
    assert s.c.dtmf_dropped == 3
    s.dtmf("#")
    (_, turn), = s.of(StartTurn)
    digits = turn.text.removeprefix("DTMF ")
    assert len(digits) == MAX_DTMF_DIGITS
    assert digits == "".join(str(i % 10) for i in range(MAX_DTMF_DIGITS))


def test_digits_flush_exactly_the_pause_after_the_last_one_with_that_time():
    s = Script()
    s.dtmf("4")
    s.quiet(DTMF_FLUSH_MS // 2)
    s.dtmf("2")  # a new digit starts the pause again
    t_last = s.t
    s.quiet(DTMF_FLUSH_MS - 20)
    assert s.of(StartTurn) == []
    s.quiet(20)
    (t, turn), = s.of(StartTurn)
    assert turn.text == "DTMF 42"
    assert t == pytest.approx(t_last + DTMF_FLUSH_MS / 1000)
    assert turn.speech_end == pytest.approx(t)


def test_hash_flushes_with_the_time_it_was_pressed():
    s = Script().quiet(300).dtmf("9")
    s.quiet(200)
    s.dtmf("#")
    (t, turn), = s.of(StartTurn)
    assert turn.speech_end == pytest.approx(0.5) == pytest.approx(t)


def test_no_speculation_while_digits_are_pending():
    s = Script().dtmf("1").talk(600).quiet(400)
    assert s.of(StartSpeculative) == []


# ---------------------------------------------------------------- ending


def test_drain_says_the_prompt_it_is_given():
    s = Script()
    (end,) = s.c.end_now("we are closing now")
    assert end == EndCall(reason="drain", prompt="we are closing now", clear=True)
    assert s.c.end_now("again") == []
    assert s.c.history[-1] is Phase.CLOSING


def test_the_history_records_each_phase_in_order():
    s = Script(reply_ms=300).talk(600).quiet(800)
    s.c.bot_speaking()
    s.quiet(400)
    s.c.closing()
    s.c.ended()
    assert s.c.history == [Phase.GREETING, Phase.LISTENING, Phase.THINKING, Phase.SPEAKING, Phase.LISTENING,
                           Phase.CLOSING, Phase.ENDED]


def test_without_speculation_turns_count_up_and_reset_the_reprompts():
    s = Script(TurnOptions(early_turn_ms=0), reply_ms=500)
    s.quiet(8000)
    assert s.c.reprompts == 1
    s.quiet(2000)
    for n in (1, 2):
        s.talk(600).quiet(800)
        assert s.c.turn_no == n and s.c.reprompts == 0
        s.quiet(600)
    assert s.kinds().count("StartTurn") == 2
