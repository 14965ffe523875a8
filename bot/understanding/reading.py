"""What a reading of one utterance gives (``Reading``) and what it was decided from
(``Evidence``): the keyword reading, the sentence vector and its similarity to each
intent's exemplars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.language import Words


@dataclass(frozen=True)
class Reading:
    intent: str  # emergency, hours, address, message, task, person, goodbye, wrong_number, repeat, identity, hello,
    #              out_of_scope, sales (a sales call, robocall or survey), faq, unknown
    faq: int = -1  # the FAQ's index when intent == "faq"
    danger: bool = False  # fire, gas or danger to life: the emergency services line first
    sure: bool = True  # for an emergency: False = ask the caller
    score: float = 0.0
    by: str = "keywords"  # or "meaning", or "head" (the trained head, head.py)
    emergency_score: float = 0.0  # how close to an emergency; for an emergency, the best other intent's score


@dataclass(frozen=True)
class Evidence:
    raw: str
    w: Words
    kw: str  # the keyword reading (keywords.intent)
    kw_faq: int
    vec: np.ndarray  # the sentence vector of the words that carry the meaning
    meaning: dict[str, float]  # each label's nearest exemplar (cosine), "faq:N" per FAQ, before any boost
    best: dict[str, float]  # the same with the keyword boosts, without danger and emergency
    danger_score: float  # the nearest danger exemplar (also over a run-on's clauses)
    em: float  # how close to an emergency, with the keyword and urgency boosts
    ranked_faq: tuple[int, float] | None = None  # the trained FAQ ranker's pick (faq_rank.py): (index, score)

    @property
    def kw_label(self) -> str:
        return f"faq:{self.kw_faq}" if self.kw == "faq" else self.kw

    def best_faq(self) -> tuple[int, float]:
        """The FAQ nearest in meaning (keyword boost included): (index, score), (-1, -1) if none."""
        faqs = [(int(k[4:]), v) for k, v in self.best.items() if k.startswith("faq:")]
        return max(faqs, key=lambda kv: kv[1], default=(-1, -1.0))

    def faq(self) -> tuple[int, float]:
        """Which FAQ, if it is an FAQ ask: the trained ranker's pick, else the nearest in meaning."""
        return self.ranked_faq if self.ranked_faq is not None else self.best_faq()
