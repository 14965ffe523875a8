"""Which FAQ an FAQ ask is about: a trained ranker over the business's FAQs.

The nearest exemplar alone (``Evidence.best_faq``) is right about 19 times in 20; the
right FAQ is nearly always among the nearest two. The ranker looks at more of each
(utterance, FAQ) pair: the similarity to the FAQ's question, to its best and second-best
example, to its examples on average and to its answer; how far it is behind the nearest
FAQ; its keywords said; the words the caller shares with the FAQ's texts (weighted by how
rare each word is among that business's FAQ texts) and with its answer alone. A
conditional logit (a linear score per pair, softmax over the business's FAQs; weights in
``faq_rank.npz``, trained by ``bench/train_faq.py``) picks the FAQ. The features describe
the pair, never which FAQ it is, so one set of weights serves every business file. The
weights are tied to the encoder's model file and the feature names: another model, no
ranker (the nearest exemplar picks)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bot.language import Words
from bot.logs import kv
from bot.profile import Faq
from bot.understanding.reading import Evidence

log = logging.getLogger("bot.understanding")

FEATURES = ("question", "nearest", "second", "mean", "top3", "answer", "is_nearest", "is_second", "gap", "gap_top3",
            "gap_mean", "boosted_pick", "kw_named", "kw_said", "overlap", "overlap_prefix", "overlap_answer", "size")
PREFIX = 5  # letters a word's prefix keeps ("whiter", "whitening": "white")


def _prefixes(stems: set[str]) -> set[str]:
    return {s[:PREFIX] for s in stems if len(s) >= PREFIX}


@dataclass(frozen=True)
class _Faq:
    keywords: tuple[str, ...]
    stems: frozenset[str]  # of its question, examples and answer
    prefixes: frozenset[str]
    answer_stems: frozenset[str]


class FaqTexts:
    """A business's FAQs as the ranker reads them: exemplar and answer vectors, word stems
    and how rare each stem is among the FAQ texts (IDF, each sentence a document)."""

    def __init__(self, faqs: tuple[Faq, ...], exemplars: list[np.ndarray], answers: np.ndarray) -> None:
        """``exemplars``: per FAQ, the vectors of its question and examples (as ``exemplars_for``
        lists them); ``answers``: one vector per FAQ's answer."""
        self.vectors = np.concatenate(exemplars) if exemplars else np.zeros((0, answers.shape[1]), np.float32)
        self.answers = answers
        sentences = [Words(s).content() for f in faqs for s in (f.question, *f.examples, f.answer) if s]
        df: dict[str, int] = {}
        for sent in sentences:
            for s in sent:
                df[s] = df.get(s, 0) + 1
        self.idf = {s: math.log((1 + len(sentences)) / n) for s, n in df.items()}
        pdf: dict[str, int] = {}
        for sent in sentences:
            for p in _prefixes(sent):
                pdf[p] = pdf.get(p, 0) + 1
        self.pidf = {p: math.log((1 + len(sentences)) / n) for p, n in pdf.items()}
        self.faqs = [_Faq(f.keywords, stems, frozenset(_prefixes(set(stems))), frozenset(Words(f.answer).content()))
                     for f in faqs
                     for stems in [frozenset().union(*(Words(s).content() for s in (f.question, *f.examples, f.answer) if s))]]
        # each FAQ's exemplar rows, padded to the longest (question first, when it has one)
        self._count = np.array([max(1, len(v)) for v in exemplars], dtype=np.float32)
        width = int(self._count.max()) if exemplars else 1
        starts = np.cumsum([0, *(len(v) for v in exemplars)])[:-1]
        self._index = np.array([[min(s + j, len(self.vectors) - 1) for j in range(width)] for s in starts], dtype=int)
        self._mask = np.array([[j < len(v) for j in range(width)] for v in exemplars], dtype=bool)
        self._has_question = np.array([bool(f.question) for f in faqs])

    def features(self, ev: Evidence) -> np.ndarray:
        """One row of ``FEATURES`` per FAQ."""
        n = len(self.faqs)
        if n == 0:
            return np.zeros((0, len(FEATURES)), np.float32)
        sims = np.where(self._mask, (self.vectors @ ev.vec)[self._index], -1.0)  # -1 past an FAQ's exemplars
        top = -np.sort(-sims, axis=1)[:, :3]  # each FAQ's three nearest exemplars, best first
        nearest, second = top[:, 0], np.where(self._count > 1, top[:, min(1, top.shape[1] - 1)], top[:, 0])
        k = np.minimum(self._count, top.shape[1])
        top3 = (top * (np.arange(top.shape[1]) < k[:, None])).sum(axis=1) / k
        mean = np.where(self._mask, sims, 0.0).sum(axis=1) / self._count
        question = np.where(self._has_question, sims[:, 0], nearest)
        rank = np.empty(n, int)
        rank[np.argsort(-nearest)] = np.arange(n)
        said = ev.w.content()
        said_idf = sum(self.idf.get(s, 0.0) for s in said) or 1.0
        said_p = _prefixes(said)
        said_pidf = sum(self.pidf.get(p, 0.0) for p in said_p) or 1.0
        words = np.array([(min(3, sum(ev.w.count(k) for k in f.keywords)),
                           sum(self.idf.get(s, 0.0) for s in said & f.stems) / said_idf,
                           sum(self.pidf.get(p, 0.0) for p in said_p & f.prefixes) / said_pidf,
                           sum(self.idf.get(s, 0.0) for s in said & f.answer_stems) / said_idf) for f in self.faqs])
        boosted, _ = ev.best_faq()
        index = np.arange(n)
        return np.column_stack([
            question, nearest, second, mean, top3, self.answers @ ev.vec, rank == 0, rank == 1,
            nearest - nearest.max(), top3 - top3.max(), mean - mean.max(), index == boosted,
            (index == ev.kw_faq) & (ev.kw == "faq"), words, np.log1p(self._count)]).astype(np.float32)


class FaqRanker:
    """A linear score per (utterance, FAQ) pair; the FAQ with the highest score is picked."""

    def __init__(self, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> None:
        self.weights, self.mean, self.scale = weights, mean, scale

    def scores(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights

    def pick(self, x: np.ndarray) -> tuple[int, float]:
        """(the FAQ's index, its score: how well the utterance fits it); (-1, 0) if none."""
        if not len(x):
            return -1, 0.0
        z = self.scores(x)
        i = int(z.argmax())
        return i, float(z[i])


def load_ranker(model_sha: str) -> FaqRanker | None:
    """The shipped ranker, if it was trained for this encoder model and these features."""
    try:
        with resources.files("bot.understanding").joinpath("faq_rank.npz").open("rb") as f:
            z = np.load(f, allow_pickle=False)
            names, sha = [str(n) for n in z["features"]], str(z["model_sha"])
            ranker = FaqRanker(z["weights"], z["mean"], z["scale"])
    except (OSError, KeyError, ValueError) as e:
        log.warning("no trained FAQ ranker: the nearest exemplar picks the FAQ", extra=kv(error=type(e).__name__))
        return None
    if sha != model_sha or names != list(FEATURES):
        log.warning("the FAQ ranker was trained for another model or features: the nearest exemplar picks the FAQ")
        return None
    return ranker
