"""The trained intent head (bot/understanding/head.py): the shipped weights belong to the
shipped model and features; its decision keeps emergencies on their own bar (sure, ask),
leaves fire, gas and danger to life and sales calls to the rules, and falls back to the
rules when its best guess is weak; and through the receptionist it reads plainly worded
requests the keywords miss."""

from __future__ import annotations

import numpy as np
import pytest

from bot.language import Words
from bot.understanding import head as head_mod
from bot.understanding.encoder import MODEL_SHA256
from bot.understanding.head import ASK, CLASSES, SURE, Head, feature_names, features, load_head
from bot.understanding.neighbours import Neighbours
from bot.understanding.reading import Evidence, Reading


def evidence(raw: str = "hello there") -> Evidence:
    vec = np.zeros(384, dtype=np.float32)
    meaning = {"faq:0": 0.4, "faq:1": 0.7, "message": 0.5}
    best = {"faq:0": 0.4, "faq:1": 0.7, "message": 0.5}
    return Evidence(raw, Words(raw), "unknown", -1, vec, meaning, best, danger_score=0.1, em=0.2)


def head_saying(**probs: float) -> Head:
    """A head whose output is these probabilities whatever it is shown (bias only)."""
    p = np.array([probs.get(c, 1e-6) for c in CLASSES], dtype=np.float64)
    n = len(feature_names())
    nobody = Neighbours(np.zeros((1, 384), np.float32), np.zeros((1, len(CLASSES)), bool))
    return Head(np.zeros((n, len(CLASSES)), np.float32), np.log(p / p.sum()).astype(np.float32),
                np.zeros(n, np.float32), np.ones(n, np.float32), nobody)


RULE_MESSAGE = Reading("message")


def test_the_shipped_head_is_for_the_shipped_model_and_features():
    h = load_head(MODEL_SHA256)
    assert h is not None
    assert h.weights.shape == (len(feature_names()), len(CLASSES))
    assert load_head("0" * 64) is None  # another model: the rules read


def test_features_have_one_value_per_name():
    near = Neighbours.names(CLASSES)  # the neighbour features come after the rest
    assert features(evidence(), RULE_MESSAGE).shape == (len(feature_names()) - len(near),)
    assert feature_names()[-len(near):] == near


@pytest.mark.parametrize(("p_em", "intent", "sure"), [
    ((SURE + 1) / 2, "emergency", True),
    ((SURE + ASK) / 2, "emergency", False),  # close but not certain: ask the caller
    (ASK / 2, "message", True),
])
def test_emergencies_keep_their_own_bar(p_em, intent, sure):
    r = head_saying(emergency=p_em, message=1 - p_em).decide(evidence(), RULE_MESSAGE)
    assert (r.intent, r.sure) == (intent, sure)


def test_the_rules_sure_of_an_emergency_need_only_the_heads_second():
    rule = Reading("emergency", sure=True)
    h = head_saying(emergency=head_mod.SECONDED + 0.05, faq=0.95 - head_mod.SECONDED)
    assert (h.decide(evidence(), rule).intent, h.decide(evidence(), rule).sure) == ("emergency", True)
    weak = head_saying(emergency=head_mod.SECONDED - 0.1, faq=1.1 - head_mod.SECONDED)
    assert weak.decide(evidence(), rule).sure is False  # still above ASK: asked, not sent on


@pytest.mark.parametrize("rule", [Reading("emergency", danger=True), Reading("sales")])
def test_danger_and_sales_stay_the_rules(rule):
    assert head_saying(hours=0.99).decide(evidence(), rule) is rule


def test_an_faq_is_the_nearest_one_in_meaning():
    r = head_saying(faq=0.9).decide(evidence(), RULE_MESSAGE)
    assert (r.intent, r.faq, r.by) == ("faq", 1, "head")


def test_a_weak_guess_leaves_the_rules_reading():
    spread = {c: 1.0 / len(CLASSES) for c in CLASSES if c not in ("emergency", "danger")}
    assert head_saying(**spread).decide(evidence(), RULE_MESSAGE) is RULE_MESSAGE


def test_danger_by_the_head_is_said_only_for_a_report_not_a_question():
    h = head_saying(danger=0.95)
    assert h.decide(evidence("there is smoke pouring out of the flat next door"), RULE_MESSAGE).danger
    assert not h.decide(evidence("how do I test my smoke alarm"), RULE_MESSAGE).danger


def test_the_nearest_training_callers_of_each_intent_are_features():
    vecs = np.eye(4, 384, dtype=np.float32)
    labels = np.zeros((4, len(CLASSES)), bool)
    labels[[0, 1], CLASSES.index("emergency")] = True
    labels[[2, 3], CLASSES.index("hours")] = True
    near = Neighbours(vecs, labels)
    f = near.features(vecs[:1])[0]
    em, hours = CLASSES.index("emergency"), CLASSES.index("hours")
    assert f[2 * em] == pytest.approx(1.0) and f[2 * hours] == pytest.approx(0.0)
    assert f[2 * em + 1] == pytest.approx(0.5)  # the mean of the nearest (1.0 and 0.0)
    alone = near.features(vecs[:1], exclude=np.array([0]))[0]  # a training caller is read without itself
    assert alone[2 * em] == pytest.approx(0.0)
    assert f[2 * CLASSES.index("faq")] == -1.0  # no training caller of that intent
