"""The turn controller on scripted frames and STT events, in virtual time: no socket,
no sleep, no VAD; a 30 s conversation runs in milliseconds."""

from __future__ import annotations

import time

import pytest

from bot.errors import StageError
from bot.providers.stt_stream import Failed, Final, Interim, Reconnected, SpeechStarted, UtteranceEnd
from bot.turns import (
    BargeIn,
    ConfirmSpeculative,
    EndCall,
    IllegalPhase,
    Phase,
    Reprompt,
    StartSpeculative,
    StartTurn,
    TurnController,
    TurnOptions,
)

FRAME = b"\xff" * 160
OPTS = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, reprompt_after_s=8.0, max_reprompts=2)


class Script:
    """Feeds a controller 20 ms frames on a virtual clock and records its decisions
    with their times. It plays the session too: ``reply_ms`` after a turn starts (or is
    confirmed) the reply has been heard, unless a barge-in cancelled it."""

    def __init__(self, opts: TurnOptions = OPTS, *, reply_ms: int | None = None, greeting_ms: int = 0) -> None:
        self.c = TurnController(opts)
        self.t = 0.0
        self.log: list[tuple[float, object]] = []
        self.reply_ms = reply_ms
        self._due: list[tuple[float, int | None]] = []  # (when, turn) the bot finishes
        if greeting_ms:
            self._due.append((greeting_ms / 1000, None))
        else:
            self.c.bot_done()

    def _take(self, decisions) -> None:
        for d in decisions:
            self.log.append((round(self.t, 3), d))
            if isinstance(d, BargeIn):
                self._due.clear()
            elif isinstance(d, (StartTurn, ConfirmSpeculative)) and self.reply_ms is not None:
                self._due.append((self.t + self.reply_ms / 1000, self.c.turn_no))
            elif isinstance(d, Reprompt):
                self._due.append((self.t + 2.0, None))

    def _bot(self) -> None:
        for when, n in list(self._due):
            if when <= self.t:
                self._due.remove((when, n))
                self.c.bot_done(n)

    def frames(self, ms: int, speech: bool, frame: bytes = FRAME) -> Script:
        for _ in range(ms // 20):
            self.t += 0.02
            self._bot()
            self._take(self.c.on_frame(frame, speech, self.t))
        return self

    def talk(self, ms: int, frame: bytes = FRAME) -> Script:
        return self.frames(ms, True, frame)

    def words(self, text: str | None) -> Script:
        """The running (speculative) turn's batch transcript is known now."""
        self._take(self.c.on_transcript(self.c.turn_no, text))
        return self

    def quiet(self, ms: int) -> Script:
        return self.frames(ms, False)

    def stt(self, ev) -> Script:
        self._take(self.c.on_stt(ev, self.t))
        return self

    def dtmf(self, digit: str) -> Script:
        self._take(self.c.on_dtmf(digit, self.t))
        return self

    def kinds(self) -> list[str]:
        return [type(d).__name__ for _, d in self.log]

    def of(self, kind) -> list[tuple[float, object]]:
        return [(t, d) for t, d in self.log if isinstance(d, kind)]


# ---------------------------------------------------------------- local VAD turns


def test_a_turn_ends_after_the_full_silence_with_a_speculative_start_first():
    s = Script().quiet(200).talk(1000).quiet(800)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]
    (t_spec, spec), = s.of(StartSpeculative)
    (t_conf, _), = s.of(ConfirmSpeculative)
    # speech 0.2-1.2 s: the early silence (300 ms) and the full one (700 ms) after it
    assert t_spec == pytest.approx(1.5) and spec.speech_end == pytest.approx(1.2)
    assert t_conf == pytest.approx(1.9)
    assert spec.audio and len(spec.audio) % 160 == 0
    assert s.c.phase is Phase.THINKING and s.c.turn_no == 1


def test_without_early_turn_the_turn_starts_at_the_end_silence_with_the_audio():
    s = Script(TurnOptions(early_turn_ms=0)).quiet(100).talk(600).quiet(800)
    (t, turn), = s.of(StartTurn)
    assert s.kinds() == ["StartTurn"]
    assert t == pytest.approx(1.4) and turn.speech_end == pytest.approx(0.7)
    # pre-roll (300 ms) + speech + trailing silence trimmed to 200 ms
    assert len(turn.audio) == 160 * (5 + 30 + 10)


def test_a_mid_sentence_pause_cancels_the_speculation_and_the_turn_goes_on():
    s = Script().talk(800).quiet(400).talk(700).quiet(800)
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative", "StartSpeculative", "ConfirmSpeculative"]
    assert s.c.turn_no == 1  # the cancelled one does not count
    # the confirmed turn's speech ends after the second part
    assert s.of(StartSpeculative)[1][1].speech_end == pytest.approx(1.9)


def test_a_pause_shorter_than_the_early_silence_changes_nothing():
    s = Script().talk(500).quiet(200).talk(500).quiet(800)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]


def test_a_burst_shorter_than_min_speech_is_noise_not_a_turn():
    s = Script().quiet(200).talk(140).quiet(2000)
    assert s.log == []
    assert s.c.phase is Phase.LISTENING


def test_speech_shorter_than_barge_in_ms_never_starts():
    s = Script(reply_ms=5000)
    s.talk(600).quiet(800)  # a turn; the bot speaks for 5 s
    s.talk(100).quiet(100).talk(100).quiet(100)  # coughs: under 120 ms each
    assert "BargeIn" not in s.kinds()


# ---------------------------------------------------------------- barge-in


def test_barge_in_over_the_reply_then_the_next_turn():
    s = Script(reply_ms=6000).talk(800).quiet(800)
    assert s.c.phase is Phase.THINKING
    s.c.bot_speaking()
    assert s.c.phase is Phase.SPEAKING
    s.quiet(1000).talk(400)
    (t_b, _), = s.of(BargeIn)
    # speech began 2.6 s in; 120 ms of it confirms the barge-in
    assert t_b == pytest.approx(2.6 + 0.12)
    assert s.c.phase is Phase.LISTENING and s.c.barge_ins == 1
    s.quiet(800)
    assert s.kinds()[-1] == "ConfirmSpeculative" and s.c.turn_no == 2


def test_the_greeting_can_be_interrupted():
    s = Script(greeting_ms=3000)
    assert s.c.phase is Phase.GREETING
    s.quiet(500).talk(300)
    assert s.kinds() == ["BargeIn"] and s.c.phase is Phase.LISTENING


def test_a_stale_report_of_an_interrupted_turn_changes_nothing():
    s = Script().talk(600).quiet(800)
    s.c.bot_speaking()
    s.talk(200)  # barge-in: turn 1 cancelled
    s.quiet(800)  # turn 2 starts
    assert s.c.turn_no == 2 and s.c.phase is Phase.THINKING
    s.c.bot_done(1)  # turn 1's task ends late
    assert s.c.phase is Phase.THINKING
    s.c.bot_done(2)
    assert s.c.phase is Phase.LISTENING


# ---------------------------------------------------------------- silence


def test_silence_reprompts_twice_then_says_goodbye_and_nothing_after():
    s = Script()
    s.quiet(30_000)
    reprompts = s.of(Reprompt)
    assert [d.n for _, d in reprompts] == [1, 2]
    # 8 s of listening each; the 2 s reprompt itself does not count as silence
    assert reprompts[0][0] == pytest.approx(8.0) and reprompts[1][0] == pytest.approx(18.0)
    (t_end, end), = s.of(EndCall)
    assert t_end == pytest.approx(28.0) and end.reason == "silence" and end.prompt == "goodbye" and not end.transfer
    assert s.c.phase is Phase.CLOSING
    s.talk(2000).quiet(1000).dtmf("5").dtmf("#")
    assert s.kinds()[-1] == "EndCall"  # closing: the caller can neither interrupt nor start a turn


def test_a_turn_resets_the_reprompt_count():
    s = Script(reply_ms=1000)
    s.quiet(8000)
    assert s.c.reprompts == 1
    s.quiet(2000).talk(600).quiet(800)
    assert s.c.reprompts == 0


def test_a_thirty_second_conversation_runs_in_milliseconds():
    t0 = time.perf_counter()
    s = Script(reply_ms=2500, greeting_ms=2000)
    s.quiet(2500)
    for _ in range(5):
        s.talk(1500).quiet(900).quiet(3000)
    s.quiet(30_000 - int(s.t * 1000))
    elapsed = time.perf_counter() - t0
    assert s.t >= 29.9
    assert [k for k in s.kinds() if k != "StartSpeculative"] == ["ConfirmSpeculative"] * 5
    assert s.c.turn_no == 5 and s.c.phase is Phase.LISTENING
    assert elapsed < 5.0  # generous: 1500 frames of pure Python


# ---------------------------------------------------------------- DTMF


def test_digits_flush_after_a_pause_or_hash():
    s = Script()
    s.dtmf("1").dtmf("2").quiet(1600)
    (_, turn), = s.of(StartTurn)
    assert turn.text == "DTMF 12"
    s.c.bot_done(1)
    s.dtmf("3").dtmf("#")
    assert s.of(StartTurn)[-1][1].text == "DTMF 3"


def test_dtmf_over_the_reply_interrupts_it():
    s = Script().talk(600).quiet(800)
    s.c.bot_speaking()
    s.dtmf("7").dtmf("#")
    assert s.kinds()[-2:] == ["BargeIn", "StartTurn"]


def test_zero_transfers_only_with_a_number_and_closes():
    s = Script(TurnOptions(can_transfer=True)).dtmf("0")
    (_, end), = s.of(EndCall)
    assert end.transfer and end.prompt == "transfer" and s.c.phase is Phase.CLOSING
    s2 = Script().dtmf("0").dtmf("#")
    assert s2.of(StartTurn)[0][1].text == "DTMF 0"


# ---------------------------------------------------------------- live STT


def live(**kw) -> Script:
    s = Script(**kw)
    s.c.stt_attached()
    return s


def test_live_final_with_speech_final_ends_the_turn_with_its_latency():
    s = live().talk(1000).quiet(300)
    s.stt(Final("What time do you open", speech_final=True))
    (t, turn), = s.of(StartTurn)
    assert turn.text == "What time do you open"
    assert turn.speech_end == pytest.approx(1.02) and turn.stt_ms == pytest.approx(280, abs=1)
    s.quiet(800)  # the local VAD's end of turn: the live STT already took it
    assert "FinalizeSTT" not in s.kinds()


def test_live_finals_accumulate_until_speech_final_or_utterance_end():
    s = live().talk(800)
    s.stt(Final("I'd like", speech_final=False)).stt(Final("to leave a message", speech_final=False))
    assert s.log == []
    s.stt(UtteranceEnd(1.0))
    assert s.of(StartTurn)[0][1].text == "I'd like to leave a message"
    s.stt(UtteranceEnd(2.0))  # no words since: nothing
    assert len(s.of(StartTurn)) == 1


def test_local_end_first_asks_the_live_stt_to_finalize():
    s = live().talk(900).quiet(800)
    assert s.kinds() == ["FinalizeSTT"]
    s.stt(Final("open tomorrow", speech_final=False, from_finalize=True))
    assert s.of(StartTurn)[0][1].text == "open tomorrow"


def test_live_interim_after_early_silence_speculates_and_the_same_final_confirms():
    s = live().talk(900).quiet(200)
    s.stt(Interim("what time do you open"))  # before the early silence: ignored
    assert s.log == []
    s.quiet(120)
    s.stt(Interim("What time do you open?"))
    (_, spec), = s.of(StartSpeculative)
    assert spec.text == "What time do you open?" and spec.audio is None
    s.stt(Interim("what time do you open"))  # the same words: nothing new
    s.stt(Final("What time do you open?", speech_final=True))
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]
    assert s.c.turn_no == 1


def test_live_final_with_other_words_cancels_the_speculation():
    s = live().talk(900).quiet(320)
    s.stt(Interim("what time do you"))
    s.stt(Interim("what time do you close"))
    s.stt(Final("What time do you close on Sunday", speech_final=True))
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative", "StartSpeculative", "CancelSpeculative", "StartTurn"]
    assert s.of(StartTurn)[0][1].text == "What time do you close on Sunday"
    assert s.c.turn_no == 1


def test_speculation_off_means_no_interim_turns():
    s = live(opts=TurnOptions(speculative_llm=False)).talk(900).quiet(400)
    s.stt(Interim("hello"))
    assert s.log == []


def test_live_final_while_the_bot_speaks_barges_in_first():
    s = live().talk(800).quiet(300).stt(Final("hi", speech_final=True))
    s.c.bot_speaking()
    s.stt(Final("sorry one more thing", speech_final=True))
    assert s.kinds()[-2:] == ["BargeIn", "StartTurn"]


def test_live_failure_runs_the_pending_turn_on_local_audio_then_local_turns():
    s = live().talk(900).quiet(800)
    assert s.kinds() == ["FinalizeSTT"]
    s.stt(Failed(StageError("stt", "upstream_error", "gone")))
    (_, turn), = s.of(StartTurn)
    assert turn.audio and turn.text is None
    assert not s.c.live
    s.c.bot_done(1)
    s.talk(600).quiet(800)
    assert s.kinds()[-1] == "ConfirmSpeculative"  # local VAD turns from now on


def test_reconnects_and_speech_started_hints_decide_nothing():
    s = live().talk(500)
    s.stt(Reconnected(attempts=2, replayed_ms=500)).stt(SpeechStarted(0.1))
    assert s.log == []


def test_after_the_goodbye_late_finals_interims_and_digits_start_nothing():
    s = live().talk(800).quiet(300).stt(Final("goodbye then", speech_final=True))
    s.c.bot_speaking()
    s.c.closing()  # the dialogue asked to hang up: the last words play
    s.stt(Final("wait", speech_final=True)).stt(Interim("one more")).dtmf("4").dtmf("#")
    s.talk(1000).quiet(1000)
    s.stt(Failed(StageError("stt", "upstream_error", "gone")))
    assert s.kinds() == ["StartTurn"]
    assert s.c.end_now() == []
    s.c.ended()
    assert s.c.phase is Phase.ENDED


def test_drain_ends_once_with_a_clear():
    s = live().talk(800).quiet(300).stt(Final("hello", speech_final=True))
    (end,) = s.c.end_now("goodbye")
    assert isinstance(end, EndCall) and end.clear and end.reason == "drain"
    assert s.c.end_now() == []


def test_illegal_phase_changes_raise():
    c = TurnController(OPTS)
    c.closing()
    with pytest.raises(IllegalPhase):
        c._set(Phase.LISTENING)


# ---------------------------------------------------------------- crashes, hours, phase reports


def test_a_speculative_turn_that_crashes_before_confirmation_is_dropped_and_the_end_starts_a_fresh_turn():
    s = Script().talk(800).quiet(400)
    assert s.kinds() == ["StartSpeculative"] and s.c.speculating
    s.c.turn_crashed(1)  # its task died of a bug while gated
    assert not s.c.speculating and s.c.phase is Phase.LISTENING
    s.quiet(400)
    assert s.kinds() == ["StartSpeculative", "StartTurn"]  # not a confirmation of the dead task
    assert s.c.phase is Phase.THINKING and s.of(StartTurn)[0][1].audio


def test_a_confirmed_turn_that_crashes_gives_the_floor_back_and_a_stale_crash_changes_nothing():
    s = Script().talk(800).quiet(800)
    assert s.c.phase is Phase.THINKING and s.c.turn_no == 1
    s.c.turn_crashed(0)  # an older task
    assert s.c.phase is Phase.THINKING
    s.c.turn_crashed(1)
    assert s.c.phase is Phase.LISTENING
    s.quiet(8000)
    assert s.kinds()[-1] == "Reprompt"  # listening again: the silence timer runs


def test_a_crash_while_closing_changes_nothing():
    s = Script().dtmf("0")
    s2 = Script(TurnOptions(can_transfer=True)).dtmf("0")
    assert s.c.phase is Phase.LISTENING and s2.c.phase is Phase.CLOSING
    s2.c.turn_crashed(None)
    assert s2.c.phase is Phase.CLOSING


def test_dtmf_zero_follows_the_hour_when_the_session_says_so():
    c = TurnController(TurnOptions(can_transfer=False))
    c.bot_done()
    assert c.on_dtmf("0", 1.0, can_transfer=True) == [EndCall(reason="transfer", prompt="transfer", transfer=True)]
    c2 = TurnController(TurnOptions(can_transfer=True))
    c2.bot_done()
    assert c2.on_dtmf("0", 1.0, can_transfer=False) == []  # a digit, flushed later


def test_every_phase_change_is_reported_once_in_order():
    seen: list[Phase] = []
    s = Script(greeting_ms=1000)
    s.c.on_phase = seen.append
    s.quiet(1200).talk(800).quiet(800)
    s.c.bot_speaking()
    s.c.bot_done(1)
    s.c.closing()
    s.c.ended()
    assert seen == [Phase.LISTENING, Phase.THINKING, Phase.SPEAKING, Phase.LISTENING, Phase.CLOSING, Phase.ENDED]


def test_a_turn_longer_than_max_turn_is_cut_and_ends():
    s = Script(TurnOptions(early_turn_ms=0, max_turn_ms=2000)).talk(3000)
    (t, turn), = s.of(StartTurn)  # the caller has not stopped, but the turn ends at the cap
    assert t < 2.6 and len(turn.audio) <= 160 * (2000 // 20 + 20)  # the cap plus pre-roll


# ---------------------------------------------------------------- turn completeness (live STT)

COMPLETE_OPTS = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, completeness=True)


def test_unfinished_words_prepare_the_reply_and_release_it_after_the_longer_silence():
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(300)
    s.stt(Final("I want to", speech_final=True))  # INCOMPLETE: 1400 ms of silence
    assert s.kinds() == [] and s.c.phase is Phase.LISTENING  # too early to pay for an LLM request
    s.quiet(260)  # 560 ms of silence: not yet within the lead (800 ms) of the 1400 it needs
    assert s.kinds() == []
    s.quiet(60)  # 620 ms: the reply is prepared (gated) in time for 1400
    (t, spec), = s.of(StartSpeculative)
    assert spec.text == "I want to" and t == pytest.approx(1.0 + 1.4 - COMPLETE_OPTS.spec_lead_ms / 1000, abs=0.03)
    s.quiet(680)  # 1.3 s since the last voice: still held
    assert s.kinds() == ["StartSpeculative"]
    s.quiet(200)
    (t, _), = s.of(ConfirmSpeculative)
    assert t == pytest.approx(1.0 + 1.4, abs=0.03) and s.c.phase is Phase.THINKING and s.c.turn_no == 1


def test_speech_before_the_longer_silence_cancels_without_a_barge_in_and_the_words_carry_on():
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(300)
    s.stt(Final("I want to", speech_final=True))
    s.quiet(600).talk(800)  # the caller goes on after 900 ms
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative"] and s.c.barge_ins == 0
    s.quiet(300).stt(Final("book a viewing", speech_final=True))  # the whole sentence is complete
    spec = s.of(StartSpeculative)[-1][1]
    assert spec.text == "I want to book a viewing" and s.kinds()[-1] == "StartSpeculative"
    s.quiet(400)  # released at the normal end silence since the last voice
    assert s.kinds()[-1] == "ConfirmSpeculative" and s.c.turn_no == 1


def test_a_hold_waits_the_shorter_extra_and_complete_words_the_end_silence():
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(300)
    s.stt(Final("My name is Sarah", speech_final=True))  # HOLD: 900 ms
    s.quiet(620)
    assert [t for t, _ in s.of(ConfirmSpeculative)] == [pytest.approx(1.9, abs=0.03)]
    # complete words: prepared at the final, spoken after END_SILENCE_MS (700) of silence, as on the batch path
    s2 = live(opts=COMPLETE_OPTS).talk(1000).quiet(300)
    s2.stt(Final("What time do you open", speech_final=True))
    assert s2.kinds() == ["StartSpeculative"] and s2.of(StartSpeculative)[0][1].text == "What time do you open"
    s2.quiet(420)
    assert [t for t, _ in s2.of(ConfirmSpeculative)] == [pytest.approx(1.7, abs=0.03)]
    # with TURN_COMPLETE_MS below the live endpointing's silence, they go at once
    quick = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, completeness=True, complete_ms=200)
    s3 = live(opts=quick).talk(1000).quiet(300)
    s3.stt(Final("What time do you open", speech_final=True))
    assert s3.kinds() == ["StartTurn"]


def test_speech_after_a_held_final_resumes_even_inside_one_local_utterance():
    # a 200 ms pause: the live STT ended the turn, the local VAD never saw an early silence
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(200)
    s.stt(Final("and my number is five five five,", speech_final=True))  # INCOMPLETE: 1400 ms
    assert s.kinds() == [] and s.c.holding  # held; its LLM would start at 600 ms of silence
    s.talk(100)  # a breath: shorter than BARGE_IN_MS, not yet the caller going on
    assert s.c.holding
    s.talk(1500).quiet(100)
    assert s.kinds() == [] and not s.c.holding and s.c.barge_ins == 0  # resumed: no request was spent
    s.stt(Final("two one three four four six seven.", speech_final=True))
    assert s.of(StartSpeculative)[-1][1].text == "and my number is five five five, two one three four four six seven."
    s.quiet(700)
    assert s.kinds()[-1] == "ConfirmSpeculative"


def test_a_caller_who_goes_on_within_the_lead_costs_no_llm_request():
    """Unfinished words at a short mid-sentence pause: the held reply's LLM would start only
    at (need - spec_lead_ms) of silence, so a caller who resumes before then sends nothing
    to the LLM; complete words still start it at the final."""
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(250)
    s.stt(Final("I'd like to book a table for", speech_final=True))  # INCOMPLETE: 1400 ms
    s.quiet(300).talk(900).quiet(250)  # a 550 ms pause, then the rest
    s.stt(Final("four people tomorrow night.", speech_final=True))
    assert s.kinds() == ["StartSpeculative"]  # one request, for the whole sentence
    assert s.of(StartSpeculative)[0][1].text == "I'd like to book a table for four people tomorrow night."
    # with no lead the old behaviour: the held words start the LLM at once, and it is cancelled
    eager = TurnOptions(**{**COMPLETE_OPTS.__dict__, "spec_lead_ms": 5000})
    e = live(opts=eager).talk(1000).quiet(250)
    e.stt(Final("I'd like to book a table for", speech_final=True))
    e.quiet(300).talk(900)
    assert e.kinds() == ["StartSpeculative", "CancelSpeculative"]


def test_an_unfinished_interim_does_not_start_the_llm_but_a_finished_one_does():
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(320)  # past the early silence
    s.stt(Interim("I want to"))
    assert s.kinds() == []
    s.stt(Interim("I want to book a viewing."))
    assert s.kinds() == ["StartSpeculative"]


def test_completeness_off_answers_unfinished_words_at_once():
    s = live().talk(1000).quiet(300)
    s.stt(Final("I want to", speech_final=True))
    assert s.kinds() == ["StartTurn"]


# ---------------------------------------------------------------- turn completeness (batch / embedded STT)

BATCH_OPTS = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, completeness=True)
A, B = b"\x11" * 160, b"\x22" * 160  # two recognisable halves of one sentence


def test_batch_unfinished_words_hold_the_gated_reply_past_the_end_silence():
    s = Script(BATCH_OPTS).talk(1000, A).quiet(400)  # the speculative turn started at 300 ms of silence
    s.words("I want to")  # INCOMPLETE: 1400 ms
    s.quiet(800)  # 1.2 s of silence: the local end of turn has passed, the reply is still gated
    assert s.kinds() == ["StartSpeculative"] and s.c.phase is Phase.LISTENING and s.c.speculating
    s.quiet(300)
    (t, _), = s.of(ConfirmSpeculative)
    assert 1.0 + 1.4 - 0.03 <= t <= 1.0 + 1.4 + 0.03
    assert s.c.phase is Phase.THINKING and s.c.turn_no == 1
    s.quiet(1000)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]  # no second turn from the same audio


def test_batch_caller_going_on_after_the_end_silence_cancels_quietly_and_keeps_the_first_audio():
    s = Script(BATCH_OPTS).talk(1000, A).quiet(400)
    first = s.of(StartSpeculative)[0][1].audio
    s.words("I want to").quiet(600).talk(800, B)  # a 1 s pause: past END_SILENCE_MS, before 1400 ms
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative"]
    assert s.c.barge_ins == 0 and s.c.phase is Phase.LISTENING and s.c.turn_no == 0
    s.quiet(400)
    spec = s.of(StartSpeculative)[1][1]
    assert spec.audio.startswith(first) and B * 10 in spec.audio  # the whole sentence, in order
    s.words("I want to book a viewing.").quiet(400)
    assert s.kinds()[-1] == "ConfirmSpeculative" and s.c.turn_no == 1
    assert s.of(ConfirmSpeculative)[0][0] < 2.0 + 0.8 + 0.8  # complete words: at the normal end of turn


def test_batch_speech_before_the_end_silence_cancels_as_before():
    s = Script(BATCH_OPTS).talk(1000, A).quiet(400).words("My name is Sarah").quiet(100).talk(600, B).quiet(800)
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative", "StartSpeculative"]
    assert s.of(StartSpeculative)[1][1].audio.startswith(A)  # the detector kept the turn's audio
    s.words("My name is Sarah and I'd like to book a viewing.").quiet(20)
    assert s.kinds()[-1] == "ConfirmSpeculative" and s.c.barge_ins == 0


def test_batch_complete_words_can_answer_before_the_end_silence():
    opts = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, completeness=True, complete_ms=500)
    s = Script(opts).talk(1000).quiet(400).words("What time do you open tomorrow?").quiet(200)
    (t, _), = s.of(ConfirmSpeculative)
    assert t < 1.0 + 0.7  # before the local end of turn
    s.quiet(1000)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]  # the end of turn that follows starts nothing
    s.talk(200)  # the caller speaks over the answer: an ordinary barge-in
    assert s.kinds()[-1] == "BargeIn"


def test_batch_words_not_known_wait_the_longest_silence_and_a_failed_stt_the_normal_one():
    s = Script(BATCH_OPTS).talk(1000).quiet(1300)
    assert s.kinds() == ["StartSpeculative"]  # no transcript yet (a slow STT): the longest wait
    s.quiet(200)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]
    s2 = Script(BATCH_OPTS).talk(1000).quiet(500).words(None).quiet(300)
    (t, _), = s2.of(ConfirmSpeculative)
    assert t <= 1.0 + 0.7 + 0.03  # the failure is reported at the normal end of turn


def test_batch_without_early_silence_the_turn_starts_gated_at_the_end_silence():
    opts = TurnOptions(end_silence_ms=700, early_turn_ms=0, min_speech_ms=200, barge_in_ms=120, completeness=True)
    s = Script(opts).talk(1000).quiet(700)
    assert s.kinds() == ["StartSpeculative"]
    s.words("What time do you open tomorrow?")  # already quiet long enough: released at once
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]


def test_batch_held_audio_never_exceeds_the_turn_cap():
    opts = TurnOptions(end_silence_ms=700, early_turn_ms=300, min_speech_ms=200, barge_in_ms=120, completeness=True, max_turn_ms=3000)
    s = Script(opts)
    for _ in range(4):  # unfinished words, a 1 s pause, again and again
        s.talk(1500, A)
        s.quiet(400).words("and then").quiet(600)
    s.quiet(1500)
    audios = [d.audio for _, d in s.of(StartSpeculative)] + [d.audio for _, d in s.of(StartTurn)]
    assert len(audios) >= 4 and all(len(a) <= 3000 * 8 for a in audios)


def test_batch_transcripts_change_nothing_when_completeness_is_off_or_live_stt_decides():
    s = Script().talk(1000).quiet(400).words("I want to").quiet(300)
    assert s.kinds() == ["StartSpeculative", "ConfirmSpeculative"]  # at the normal end of turn
    s2 = live(opts=BATCH_OPTS).talk(1000).quiet(400)
    assert s2.c.on_transcript(s2.c.turn_no, "I want to") == []


def test_batch_a_stale_transcript_of_a_cancelled_speculation_is_ignored():
    s = Script(BATCH_OPTS).talk(1000).quiet(400)
    s.talk(500).quiet(400)  # cancelled, and a new speculation with the same number
    assert s.c.on_transcript(s.c.turn_no - 1, "What time do you open?") == []
    s.quiet(600)  # no words yet for this one: it waits
    assert s.kinds() == ["StartSpeculative", "CancelSpeculative", "StartSpeculative"]


def test_turn_options_come_from_settings_with_the_speculative_lead():
    from bot.settings import Settings

    opts = TurnOptions.from_settings(Settings.from_env({"TWILIO_VALIDATE": "false", "SPECULATIVE_LEAD_MS": "300", "BARGE_IN_MS": "60"}))
    assert (opts.spec_lead_ms, opts.barge_in_ms, opts.completeness) == (300, 60, True)
    assert TurnOptions.from_settings(Settings()).spec_lead_ms == TurnOptions().spec_lead_ms == Settings().speculative_lead_ms


def test_a_held_turn_whose_llm_has_not_started_is_answered_when_the_live_stt_fails():
    s = live(opts=COMPLETE_OPTS).talk(1000).quiet(300)
    s.stt(Final("I want to", speech_final=True))  # INCOMPLETE: held, its LLM not started yet
    assert s.kinds() == [] and s.c.holding
    s.stt(Failed(StageError("stt", "upstream_error", "gone")))
    (_, turn), = s.of(StartTurn)
    assert turn.text == "I want to" and not s.c.holding and not s.c.live
