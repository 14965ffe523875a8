"""Train the FAQ ranker (bot/understanding/faq_rank.py) on bench/dialogue_data.

    uv run --extra local python -m bench.train_faq [--l2 1e-2] [--folds 5] [--write]

Every non-blind utterance labelled faq:N (several: any of them is right) is read by the
hand-written rules for its evidence, and each of its business's FAQs becomes one candidate
(faq_rank.FEATURES). A conditional logit (a linear score per candidate, softmax over the
business's FAQs; numpy, full-batch Adam, L2) is fitted to them all. Printed, against the
nearest exemplar (``Evidence.best_faq``) on the same utterances: top-1 accuracy when trained
on the dev half and read on the test half (bench/dialogue.py's split), k-fold cross-validated
(each utterance read by a ranker trained without its fold: the honest number for the
shipped one, which is trained on all), and with each business file left out in turn (how it
does on a business it has never seen). ``--write`` saves bot/understanding/faq_rank.npz,
tied to the encoder's model file and the feature names.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.dialogue import load_data, load_profile_compat
from bot.understanding.classify import Understanding
from bot.understanding.encoder import MODEL_SHA256, load_encoder
from bot.understanding.faq_rank import FEATURES, FaqRanker

OUT = Path(__file__).resolve().parents[1] / "bot" / "understanding" / "faq_rank.npz"


@dataclass
class Data:
    x: np.ndarray  # (utterances, most FAQs, features), zero past a business's FAQs
    valid: np.ndarray  # (utterances, most FAQs): a FAQ of the business
    right: np.ndarray  # (utterances, most FAQs): a labelled FAQ
    nearest: np.ndarray  # best_faq()'s pick
    split: np.ndarray
    business: np.ndarray
    text: list[str]


def dataset() -> tuple[Data, float]:
    encoder = load_encoder()
    readers: dict[Path, Understanding] = {}
    rows, picks, splits, businesses, texts, secs = [], [], [], [], [], []
    for b in load_data().values():
        if b.utterances and b.utterances[0].split.startswith("blind"):
            continue
        if b.file not in readers:
            readers[b.file] = Understanding(load_profile_compat(b.file), encoder, trained=False, ranked=False)
        u = readers[b.file]
        assert u.faq_texts is not None
        for utt in b.utterances:
            right = {int(lb[4:]) for lb in utt.labels if lb.startswith("faq:")}
            if not right:
                continue
            ev, _ = u.evidence(utt.text)
            t0 = time.perf_counter()
            x = u.faq_texts.features(ev)
            secs.append(time.perf_counter() - t0)
            rows.append((x, right))
            picks.append(ev.best_faq()[0])
            splits.append(utt.split)
            businesses.append(b.file.stem)
            texts.append(utt.text)
    most = max(len(x) for x, _ in rows)
    n = len(rows)
    data = Data(np.zeros((n, most, len(FEATURES)), np.float32), np.zeros((n, most), bool), np.zeros((n, most), bool),
                np.array(picks), np.array(splits), np.array(businesses), texts)
    for k, (x, right) in enumerate(rows):
        data.x[k, : len(x)] = x
        data.valid[k, : len(x)] = True
        data.right[k, sorted(right)] = True
    return data, float(np.mean(secs))


def fit(d: Data, rows: np.ndarray, l2: float, steps: int = 800, lr: float = 0.05) -> FaqRanker:
    """Minimises the mean of -log P(a labelled FAQ) + l2/2 |w|^2 over ``rows``."""
    x, valid, right = d.x[rows], d.valid[rows], d.right[rows]
    pairs = x[valid]
    mean = pairs.mean(axis=0)
    scale = pairs.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = np.where(valid[..., None], (x - mean) / scale, 0.0)
    n = len(rows)
    w = np.zeros(len(FEATURES))
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        z = np.where(valid, xs @ w, -np.inf)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        q = np.where(right, p, 0.0)
        q /= q.sum(axis=1, keepdims=True)
        g = np.einsum("nf,nfd->d", p - q, xs) / n + l2 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return FaqRanker(w.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32))


def picks(ranker: FaqRanker, d: Data, rows: np.ndarray) -> np.ndarray:
    z = np.where(d.valid[rows], ranker.scores(d.x[rows]), -np.inf)
    return np.asarray(z.argmax(axis=1))


def line(name: str, d: Data, rows: np.ndarray, picked: np.ndarray) -> str:
    ranked = d.right[rows, picked]
    nearest = d.right[rows, d.nearest[rows]] & (d.nearest[rows] >= 0)
    return (f"  {name:24s} n={len(rows):4d}  ranker {100 * ranked.mean():5.1f} %  nearest exemplar {100 * nearest.mean():5.1f} %"
            f"  (ranker right where nearest wrong {int((ranked & ~nearest).sum())}, the reverse {int((~ranked & nearest).sum())})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--show-errors", action="store_true", help="where the cross-validated ranker and the nearest exemplar differ (x: the ranker wrong)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    d, secs = dataset()
    print(f"{len(d.x)} FAQ asks read in {time.perf_counter() - t0:.1f} s; features {1e6 * secs:.0f} us per utterance")
    every = np.arange(len(d.x))
    dev, test = every[d.split == "dev"], every[d.split == "test"]
    print("top-1 accuracy:")
    print(line("test (trained on dev)", d, test, picks(fit(d, dev, a.l2), d, test)))
    fold = every % a.folds
    held = np.zeros(len(d.x), int)
    for k in range(a.folds):
        held[fold == k] = picks(fit(d, every[fold != k], a.l2), d, every[fold == k])
    print(line(f"{a.folds}-fold (all)", d, every, held[every]))
    by_business: dict[str, list[int]] = defaultdict(list)
    for i, b in enumerate(d.business):
        by_business[str(b)].append(i)
    for b, idx in sorted(by_business.items()):
        print(line(f"  {b}", d, np.array(idx), held[idx]))
    for b, idx in sorted(by_business.items()):
        rest = every[d.business != b]
        print(line(f"{b} left out", d, np.array(idx), picks(fit(d, rest, a.l2), d, np.array(idx))))
    ranker = fit(d, every, a.l2)
    print("weights (standardised features):", ", ".join(f"{f} {w:+.2f}" for f, w in zip(FEATURES, ranker.weights, strict=True)))
    if a.show_errors:
        for i in every:
            if d.right[i, held[i]] != (d.nearest[i] >= 0 and d.right[i, d.nearest[i]]):
                print(f"    {'x' if not d.right[i, held[i]] else '+'} [{d.business[i]}] faq:{held[i]} (nearest faq:{d.nearest[i]}, want "
                      f"{','.join(f'faq:{j}' for j in np.flatnonzero(d.right[i]))}) | {d.text[i]}")
    if a.write:
        np.savez_compressed(OUT, weights=ranker.weights, mean=ranker.mean, scale=ranker.scale,
                            features=np.array(FEATURES), model_sha=np.array(MODEL_SHA256))
        print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()
