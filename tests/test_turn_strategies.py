"""The turn controller's strategies alone, on a fake ``Floor``: the end-of-turn gates
and the live-STT rules, with a scripted words judge; and a controller given a gate of
its own (the strategies are swappable)."""

from __future__ import annotations

from bot.errors import StageError
from bot.providers.stt_stream import Failed, Final, Interim
from bot.turns import CancelSpeculative, ConfirmSpeculative, Phase, StartSpeculative, StartTurn, TurnController, TurnOptions
from bot.turns.decisions import Decision, FinalizeSTT
from bot.turns.gating import CompletenessGate, CompletenessJudge, NoGate
from bot.turns.live import LiveRules

FRAME = b"\xff" * 160


class FakeFloor:
    """A controller reduced to what a strategy sees: facts set by the test, and every
    request recorded (speculate / start a turn always succeed while listening)."""

    def __init__(self) -> None:
        self.phase = Phase.LISTENING
        self.over = False
        self.bot_active = False
        self.speculating = False
        self.spec_text: str | None = None
        self.dtmf_pending = False
        self.turn_no = 0
        self.quiet_ms = 0
        self.last_voice = 10.0
        self.maybe_ended = False
        self.asked: list[str] = []
        self.closed = 0

    def speculate(self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None) -> list[Decision]:
        if self.phase is not Phase.LISTENING or self.speculating:
            return []
        self.asked.append(f"speculate:{text or len(audio or b'')}")
        self.turn_no += 1
        self.speculating, self.spec_text = True, text
        return [StartSpeculative(speech_end=speech_end, audio=audio, text=text, stt_ms=stt_ms)]

    def confirm(self, stt_ms: float | None = None) -> list[Decision]:
        spec, self.speculating, self.spec_text = self.speculating, False, None
        self.asked.append("confirm")
        return [ConfirmSpeculative(stt_ms=stt_ms)] if spec else []

    def cancel_speculation(self) -> list[Decision]:
        spec, self.speculating, self.spec_text = self.speculating, False, None
        if not spec:
            return []
        self.asked.append("cancel")
        self.turn_no -= 1
        return [CancelSpeculative()]

    def start_turn(self, speech_end: float, *, audio: bytes | None = None, text: str | None = None, stt_ms: float | None = None) -> list[Decision]:
        self.asked.append(f"turn:{text or len(audio or b'')}")
        self.turn_no += 1
        return [StartTurn(speech_end=speech_end, audio=audio, text=text, stt_ms=stt_ms)]

    def text_turn(self, text: str, speech_end: float, stt_ms: float | None = None) -> list[Decision]:
        return self.start_turn(speech_end, text=text, stt_ms=stt_ms)

    def close_utterance(self) -> None:
        self.closed += 1


class Judge:
    """Words ending in "and" need 1200 ms; others 500; 1500 while unknown."""

    longest_ms = 1500

    def need_ms(self, text: str) -> int:
        return 1200 if text.rstrip().endswith("and") else 500


# ----------------------------------------------------------------- the gates


def test_no_gate_answers_at_the_local_end():
    f = FakeFloor()
    g = NoGate(f, end_silence_ms=700)
    out = g.local_end(5.0, b"a" * 800)
    assert [type(d).__name__ for d in out] == ["StartTurn"] and out[0].speech_end == 4.3
    f.speculate(4.0, audio=b"a")
    assert [type(d).__name__ for d in g.local_end(5.0, b"a")] == ["ConfirmSpeculative"]
    assert g.on_transcript(1, "anything") == [] and g.tick() == [] and not g.waiting and g.joined(b"x") == b"x"


def test_completeness_gate_holds_unfinished_words_until_their_silence():
    f = FakeFloor()
    g = CompletenessGate(f, Judge(), end_silence_ms=700, max_turn_ms=30_000)
    f.speculate(1.0, audio=b"early")
    assert g.on_transcript(f.turn_no, "my name is Sarah and") == []  # 0 ms quiet: not yet
    f.quiet_ms = 700
    assert g.local_end(2.0, b"turn") == [] and g.waiting  # the local end: still held, the audio kept
    assert g.joined(b"more") == b"turnmore"  # a caller who goes on: the turn keeps its first part
    f.quiet_ms = 1180
    assert g.tick() == []
    f.quiet_ms = 1200
    assert [type(d).__name__ for d in g.tick()] == ["ConfirmSpeculative"] and f.closed == 1


def test_completeness_gate_waits_the_longest_while_the_words_are_unknown():
    f = FakeFloor()
    g = CompletenessGate(f, Judge(), end_silence_ms=700, max_turn_ms=30_000)
    f.speculate(1.0, audio=b"early")
    f.quiet_ms = 1400
    assert g.tick() == []
    assert g.on_transcript(f.turn_no + 1, "what time do you open") == []  # another turn's words: ignored
    assert [type(d).__name__ for d in g.on_transcript(f.turn_no, "what time do you open")] == ["ConfirmSpeculative"]


def test_completeness_gate_with_no_early_silence_starts_a_gated_turn_to_judge_the_words():
    f = FakeFloor()
    g = CompletenessGate(f, Judge(), end_silence_ms=700, max_turn_ms=30_000)
    out = g.local_end(3.0, b"whole turn")
    assert [type(d).__name__ for d in out] == ["StartSpeculative"] and g.waiting
    f.phase, f.speculating = Phase.THINKING, False
    g.drop()
    assert [type(d).__name__ for d in g.local_end(3.0, b"x")] == ["StartTurn"]  # not listening: no gate


def test_a_turn_at_its_length_limit_is_answered_at_once():
    f = FakeFloor()
    g = CompletenessGate(f, Judge(), end_silence_ms=700, max_turn_ms=1000)  # 8000 bytes
    f.speculate(1.0, audio=b"early")
    assert g.on_transcript(f.turn_no, "and") == []
    assert [type(d).__name__ for d in g.local_end(2.0, b"a" * 8000)] == ["ConfirmSpeculative"]


def test_the_default_judge_follows_turn_completeness():
    j = CompletenessJudge(700, complete_ms=400)
    assert j.need_ms("What time do you open tomorrow?") == 400
    assert j.need_ms("I was wondering if") > 700 and j.longest_ms >= j.need_ms("I was wondering if")
    assert CompletenessJudge(700).need_ms("What time do you open tomorrow?") == 700


# ----------------------------------------------------------------- the live STT's rules


def live(f: FakeFloor, judge: Judge | None = None) -> LiveRules:
    r = LiveRules(f, barge_in_ms=80, spec_lead_ms=800, speculative_llm=True, judge=judge)
    r.attach()
    return r


def test_finals_end_the_turn_and_a_matching_speculation_is_confirmed():
    f = FakeFloor()
    r = live(f)
    assert r.on_stt(Interim("what time"), 11.0) == []  # before the early silence: nothing
    f.maybe_ended = True
    assert [type(d).__name__ for d in r.on_stt(Interim("What time?"), 11.0)] == ["StartSpeculative"]
    assert r.on_stt(Final("what time", speech_final=False), 11.1) == []
    out = r.on_stt(Final("", speech_final=True), 11.3)
    assert [type(d).__name__ for d in out] == ["ConfirmSpeculative"] and out[0].stt_ms > 0


def test_other_words_in_the_final_cancel_the_speculation_and_start_their_own_turn():
    f = FakeFloor()
    r = live(f)
    f.maybe_ended = True
    r.on_stt(Interim("what time"), 11.0)
    out = r.on_stt(Final("what time do you close", speech_final=True), 11.5)
    assert [type(d).__name__ for d in out] == ["CancelSpeculative", "StartTurn"] and out[1].text == "what time do you close"


def test_unfinished_words_are_held_then_released_by_silence_or_resumed_by_speech():
    f = FakeFloor()
    r = live(f, Judge())
    assert r.on_stt(Final("my number is and", speech_final=True), 11.0) == []
    assert r.holding and f.asked == []  # 1200 ms needed, 800 lead: not worth starting yet
    f.quiet_ms = 400
    assert [type(d).__name__ for d in r.on_frame(None, False)] == ["StartSpeculative"]  # within the lead: prepared
    f.quiet_ms = 1200
    assert [type(d).__name__ for d in r.on_frame(None, False)] == ["ConfirmSpeculative"] and not r.holding
    # held again, then the caller goes on: the held words begin the next turn
    f.quiet_ms = 0
    assert r.on_stt(Final("call me back and", speech_final=True), 20.0) == [] and r.holding
    for _ in range(3):  # 60 ms of voice inside the same utterance: less than BARGE_IN_MS
        assert r.on_frame(None, True) == []
    assert r.holding
    assert r.on_frame(None, True) == [] and not r.holding  # 80 ms: the caller goes on
    f.quiet_ms = 600
    out = r.on_stt(Final("five five five", speech_final=True), 21.0)
    assert [type(d).__name__ for d in out] == ["StartTurn"] and out[0].text == "call me back and five five five"


def test_a_local_end_asks_for_the_final_once_and_a_failure_falls_back_to_the_local_audio():
    f = FakeFloor()
    r = live(f)
    assert r.local_end(b"audio") == [FinalizeSTT()]
    out = r.on_stt(Failed(StageError("stt", "closed", "gone", provider="live")), 12.0)
    assert not r.attached and [type(d).__name__ for d in out] == ["StartTurn"] and out[0].audio == b"audio"
    assert r.on_stt(Final("late", speech_final=True), 12.5) == []  # detached: ignored


# ----------------------------------------------------------------- swapping a strategy


class EveryTurnGated:
    """A gate that never answers at the local end: every turn waits for its transcript."""

    def __init__(self, floor: TurnController) -> None:
        self.floor, self.waiting = floor, False
        self.seen: list[tuple[int, str | None]] = []

    def joined(self, audio: bytes) -> bytes:
        return audio

    def local_end(self, t: float, audio: bytes) -> list[Decision]:
        return [] if self.floor.speculating else self.floor.speculate(t, audio=audio)

    def on_transcript(self, n: int, text: str | None) -> list[Decision]:
        self.seen.append((n, text))
        return self.floor.confirm()

    def tick(self) -> list[Decision]:
        return []

    def settled(self) -> None: ...

    def drop(self) -> None: ...


def test_a_controller_given_another_gate_uses_it():
    gates: list[EveryTurnGated] = []

    def make(c: TurnController) -> EveryTurnGated:
        gates.append(EveryTurnGated(c))
        return gates[-1]

    c = TurnController(TurnOptions(barge_in_ms=80, early_turn_ms=0), gate=make)
    c.bot_done()
    t, out = 0.0, []
    for speech, ms in ((True, 600), (False, 800)):
        for _ in range(ms // 20):
            t += 0.02
            out += c.on_frame(FRAME, speech, t)
    assert [type(d).__name__ for d in out] == ["StartSpeculative"] and c.phase is Phase.LISTENING
    assert [type(d).__name__ for d in c.on_transcript(1, "hello")] == ["ConfirmSpeculative"]
    assert gates[0].seen == [(1, "hello")] and c.phase is Phase.THINKING
