"""The FAQ ranker (bot/understanding/faq_rank.py): the shipped weights belong to the shipped
model and features; through the receptionist it picks the FAQ asked where the nearest
exemplar picks another; without weights the nearest exemplar picks, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.profile import load_profile
from bot.understanding.classify import Understanding
from bot.understanding.encoder import MODEL_SHA256
from bot.understanding.faq_rank import FEATURES, FaqRanker, load_ranker

BUSINESS = Path(__file__).resolve().parents[1] / "examples" / "business"
PLUMBING, DENTAL = load_profile(BUSINESS / "plumbing-heating.toml"), load_profile(BUSINESS / "dental-practice.toml")


def faq_index(profile, question: str) -> int:
    return next(i for i, f in enumerate(profile.faqs) if f.question == question)


def test_the_shipped_ranker_is_for_the_shipped_model_and_features():
    r = load_ranker(MODEL_SHA256)
    assert r is not None
    assert r.weights.shape == r.mean.shape == r.scale.shape == (len(FEATURES),)
    assert load_ranker("0" * 64) is None  # another model: the nearest exemplar picks


def test_the_highest_score_is_picked():
    r = FaqRanker(np.array([1.0, -1.0], np.float32), np.array([1.0, 0.0], np.float32), np.full(2, 2.0, np.float32))
    assert r.pick(np.array([[0.0, 5.0], [3.0, 1.0], [2.0, 0.4]], np.float32)) == (1, pytest.approx(0.5))
    assert r.pick(np.zeros((0, 2), np.float32)) == (-1, 0.0)  # a business without FAQs


@pytest.mark.parametrize(("profile", "text", "question"), [
    (PLUMBING, "do you charge to come and price up a job", "Do you give free quotes?"),
    (PLUMBING, "can I see the engineer's ID card when they get here", "Are your engineers Gas Safe registered?"),
    (DENTAL, "can I bring both my kids in together for a check up", "Do you treat children?"),
])
def test_the_ranker_picks_the_faq_asked_where_the_nearest_exemplar_does_not(encoder, profile, text, question):
    u = Understanding(profile, encoder)
    assert u.faq_ranker is not None and u.faq_texts is not None
    want = faq_index(profile, question)
    ev, _ = u.evidence(text)
    assert ev.best_faq()[0] != want  # the nearest exemplar alone gets it wrong
    assert u.faq_texts.features(ev).shape == (len(profile.faqs), len(FEATURES))
    r = u.read(text)
    assert (r.intent, r.faq) == ("faq", want)


def test_without_weights_the_nearest_exemplar_picks(encoder):
    text = "do you charge to come and price up a job"
    u = Understanding(PLUMBING, encoder, ranked=False)  # the shipped head, no ranker
    assert u.faq_ranker is None
    ev, _ = u.evidence(text)
    assert ev.ranked_faq is None and ev.faq() == ev.best_faq()
    r = u.read(text)
    assert (r.intent, r.faq) == ("faq", ev.best_faq()[0])
