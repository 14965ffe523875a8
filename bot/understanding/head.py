"""The trained head: the intent from the sentence vector and the evidence around it.

A multinomial logistic regression (numpy only; weights in ``head.npz``, trained by
``bench/train_head.py`` on bench/dialogue_data) over: the sentence vector, the words said
(hashed stems and stem pairs),
the similarity to each built-in intent's nearest exemplar and to the nearest FAQs, the
keyword reading, the hand-written rules' reading, the cues the rules use (calm,
urgency, a callback asked for, a question...), and how near it is to the training callers of
each intent (neighbours.py). It learns how much to trust each, where
the rules had hand-set thresholds. Emergencies keep their own bar: the head's emergency
probability at or above ``SURE`` (``SECONDED`` when the rules are sure too) sends the call
on, from ``ASK`` the caller is asked; fire,
gas and danger to life found by the rules always count; a sales call stays the rules'.
The weights are tied to the encoder's model file: another model, no head (the rules read).
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Callable
from importlib import resources

import numpy as np

from bot.language import Words, stem
from bot.logs import kv
from bot.understanding import keywords
from bot.understanding.neighbours import Neighbours
from bot.understanding.reading import Evidence, Reading

log = logging.getLogger("bot.understanding")

CLASSES = ("emergency", "danger", "hours", "address", "message", "person", "goodbye", "wrong_number", "repeat",
           "identity", "hello", "out_of_scope", "faq")
SIMILAR = ("danger", "emergency", "hours", "address", "message", "task", "person", "goodbye", "wrong_number", "repeat",
           "identity", "hello", "out_of_scope")
KEYWORD = ("emergency", "sales", "identity", "person", "goodbye", "wrong_number", "repeat", "message", "hours", "address",
           "faq", "task", "hello", "unknown")
RULES = ("danger", "emergency", "emergency_ask", "sales", "hours", "address", "message", "task", "person", "goodbye",
         "wrong_number", "repeat", "identity", "hello", "out_of_scope", "faq", "unknown")
CUES: dict[str, Callable[[Words], float]] = {
    "danger_words": lambda w: float(keywords.danger(w)),
    "calm_said": lambda w: float(w.has(*keywords.CALM_SAID)),
    "calm": lambda w: float(w.has(*keywords.CALM)),
    "urgency": lambda w: float(min(2, sum(w.count(c) for c in keywords.URGENCY))),
    "callback": lambda w: float(w.has(*keywords.CALLBACK)),
    "message_words": lambda w: float(w.has(*keywords.MESSAGE)),
    "not_danger": lambda w: float(w.has(*keywords.NOT_DANGER)),
    "chronic": lambda w: float(w.has(*keywords.CHRONIC)),
    "advice": lambda w: float(w.has(*keywords.ADVICE)),
    "asking": lambda w: float(keywords.asking(w)),
    "staff_task": lambda w: float(w.has(*keywords.STAFF_TASKS)),
    "people": lambda w: float(w.has(*keywords.PEOPLE)),
    "animals": lambda w: float(w.has(*keywords.ANIMALS)),
    "words": lambda w: min(len(w.text.split()), 40) / 20.0,
}
GRAMS = 2048  # hashed word stems and stem pairs (the wording the sentence vector smooths over)
SURE = 0.995  # emergency probability: at or above, put through unasked (below: asked; a routine problem read as one is asked, not put through)
ASK = 0.07  # ... from here, ask the caller (5-fold with u14-u15: recall 99.25 -> 99.44 % from 0.1, non-emergencies asked 4.1 -> 4.8 %)
SECONDED = 0.9  # ... or at least this when the rules are sure of it
DANGER = 0.5  # danger probability (of the emergency's): the emergency services line first, never asked (from this emergency one)
UNSURE = 0.35  # below this, the head's best guess is no better than the rules'


def feature_names() -> list[str]:
    return ([f"vec{i}" for i in range(384)] + [f"sim:{s}" for s in SIMILAR] + ["sim:faq", "sim:faq2", "faq_backed", "em", "danger"]
            + [f"kw:{k}" for k in KEYWORD] + [f"rule:{r}" for r in RULES] + [f"cue:{c}" for c in CUES]
            + [f"gram{i}" for i in range(GRAMS)] + Neighbours.names(CLASSES))


def grams(w: Words) -> np.ndarray:
    """Which word stems and stem pairs were said, hashed into ``GRAMS`` slots."""
    stems = [stem(t) for t in w.text.split()]
    out = np.zeros(GRAMS, dtype=np.float32)
    for g in (*stems, *(f"{a}_{b}" for a, b in zip(stems, stems[1:], strict=False))):
        out[zlib.crc32(g.encode()) % GRAMS] = 1.0
    return out


def _rule_name(rule: Reading) -> str:
    if rule.intent == "emergency":
        return "danger" if rule.danger else "emergency" if rule.sure else "emergency_ask"
    return rule.intent


def features(ev: Evidence, rule: Reading) -> np.ndarray:
    faqs = sorted((v for k, v in ev.meaning.items() if k.startswith("faq:")), reverse=True)
    best_faq, _ = ev.best_faq()
    backed = ev.kw == "faq" and ev.kw_faq == best_faq
    rule_name = _rule_name(rule)
    extra = ([ev.meaning.get(s, -1.0) for s in SIMILAR] + [faqs[0] if faqs else -1.0, faqs[1] if len(faqs) > 1 else -1.0]
             + [float(backed), ev.em, ev.danger_score] + [float(ev.kw == k) for k in KEYWORD]
             + [float(rule_name == r) for r in RULES] + [f(ev.w) for f in CUES.values()])
    return np.concatenate([ev.vec.astype(np.float32), np.asarray(extra, dtype=np.float32), grams(ev.w)])


class Head:
    def __init__(self, weights: np.ndarray, bias: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 neighbours: Neighbours) -> None:
        self.weights, self.bias, self.mean, self.scale = weights, bias, mean, scale
        self.neighbours = neighbours

    def probs(self, ev: Evidence, rule: Reading) -> np.ndarray:
        x = np.concatenate([features(ev, rule), self.neighbours.features(ev.vec[None, :])[0]])
        z = ((x - self.mean) / self.scale) @ self.weights + self.bias
        e = np.exp(z - z.max())
        return e / e.sum()

    def emergency(self, ev: Evidence, rule: Reading) -> float:
        """The head's probability that the caller is reporting an emergency (danger included)."""
        p = self.probs(ev, rule)
        return float(p[CLASSES.index("emergency")] + p[CLASSES.index("danger")])

    def decide(self, ev: Evidence, rule: Reading) -> Reading:
        """The head's reading; the rules' where they are the safer call (danger, sales)."""
        if rule.intent == "sales" or (rule.intent == "emergency" and rule.danger):
            return rule
        p = dict(zip(CLASSES, self.probs(ev, rule).tolist(), strict=True))
        emergency = p["emergency"] + p["danger"]
        others = {c: v for c, v in p.items() if c not in ("emergency", "danger")}
        top, top_p = max(others.items(), key=lambda kv: kv[1])
        rules_sure = rule.intent == "emergency" and rule.sure
        danger = p["danger"] >= DANGER * emergency and not keywords.asking(ev.w) and not ev.w.has(*keywords.NOT_DANGER)
        if emergency >= SURE or (rules_sure and emergency >= SECONDED) or (danger and emergency >= DANGER):
            return Reading("emergency", danger=danger, sure=True, score=emergency, by="head", emergency_score=top_p)
        if emergency >= ASK:
            return Reading("emergency", sure=False, score=emergency, by="head", emergency_score=top_p)
        if top_p < UNSURE and rule.intent != "emergency":
            return rule
        if top == "faq":
            i, _ = ev.faq()
            if i >= 0:
                return Reading("faq", i, score=top_p, by="head", emergency_score=emergency)
            top = "message"
        if top == "message" and rule.intent == "task":
            return Reading("task", score=top_p, by="head", emergency_score=emergency)
        return Reading(top, score=top_p, by="head", emergency_score=emergency)


@functools.cache  # one per process, shared by every business profile (15 MB of neighbours)
def load_head(model_sha: str) -> Head | None:
    """The shipped head, if it was trained for this encoder model and these features."""
    try:
        here = resources.files("bot.understanding")
        with here.joinpath("neighbours.npz").open("rb") as f:
            n = np.load(f, allow_pickle=False)
            neighbours, n_sha = Neighbours(n["vectors"], n["labels"]), str(n["model_sha"])
        with here.joinpath("head.npz").open("rb") as f:
            z = np.load(f, allow_pickle=False)
            names, sha = [str(n) for n in z["features"]], str(z["model_sha"])
            head = Head(z["weights"], z["bias"], z["mean"], z["scale"], neighbours)
            classes = tuple(str(c) for c in z["classes"])
    except (OSError, KeyError, ValueError) as e:
        log.warning("no trained intent head: the rules read", extra=kv(error=type(e).__name__))
        return None
    if not sha == n_sha == model_sha or names != feature_names() or classes != CLASSES:
        log.warning("the intent head was trained for another model or features: the rules read")
        return None
    return head
