"""Train the intent head (bot/understanding/head.py) on bench/dialogue_data.

    uv run --extra local python -m bench.train_head [--on dev|all] [--l2 3e-3] [--folds 5] [--write]

Every utterance of the chosen split (``dev``: the dev half, so the test half and the blind
sets measure it; ``all``: dev and test, the blind sets measure it) is read by the
hand-written rules (no head) for its features; a multinomial logistic regression (numpy,
full-batch Adam, L2) is fitted to its labels (several labels: shared), with how near each is to the other training utterances
(neighbours.py), and printed with the
accuracy and emergency numbers on the other splits (``--folds``: also each training utterance
read by a head trained without its fold, the estimate for a head trained on everything). ``--write`` saves
bot/understanding/head.npz and neighbours.npz, tied to the encoder's model file and the feature names.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.dialogue import EMERGENCY_LABELS, load_data, load_profile_compat
from bot.understanding.classify import Understanding
from bot.understanding.encoder import MODEL_SHA256, load_encoder
from bot.understanding.head import ASK, CLASSES, SURE, feature_names, features
from bot.understanding.neighbours import Neighbours, quantise

OUT = Path(__file__).resolve().parents[1] / "bot" / "understanding" / "head.npz"
NEIGHBOURS = OUT.with_name("neighbours.npz")
DIM = 384  # the sentence vector leads the features


def with_neighbours(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The features with the neighbour features as the shipped head computes them, from the
    ``train`` rows only: a training row is read without itself, any other row with them all."""
    rows = np.flatnonzero(train)
    near = Neighbours(quantise(x[rows, :DIM]), y[rows] > 0)  # as shipped
    exclude = np.full(len(x), -1)
    exclude[rows] = np.arange(len(rows))
    return np.concatenate([x, near.features(x[:, :DIM], exclude)], axis=1)


def dataset() -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, ...]]]:
    encoder = load_encoder()
    readers: dict[Path, Understanding] = {}
    xs, ys, splits, labels = [], [], [], []
    for b in load_data().values():
        if b.file not in readers:
            readers[b.file] = Understanding(load_profile_compat(b.file), encoder, trained=False)
        u = readers[b.file]
        for utt in b.utterances:
            ev, rule = u.evidence(utt.text)
            xs.append(features(ev, rule))
            target = np.zeros(len(CLASSES), dtype=np.float32)
            kinds = {label.split(":")[0] for label in utt.labels}
            for k in kinds:
                target[CLASSES.index(k)] = 1.0 / len(kinds)
            ys.append(target)
            splits.append(utt.split)
            labels.append(tuple(sorted(kinds)))
    return np.stack(xs), np.stack(ys), splits, labels


def fit(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 600, lr: float = 0.03) -> tuple[np.ndarray, ...]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-3] = 1.0
    xs = (x - mean) / scale
    n, d = xs.shape
    w = np.zeros((d, y.shape[1]), dtype=np.float64)
    b = np.zeros(y.shape[1], dtype=np.float64)
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, steps + 1):
        z = xs @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / n
        gw, gb = xs.T @ g + l2 * w, g.sum(axis=0)
        for m, v, gr, par in ((mw, vw, gw, w), (mb, vb, gb, b)):
            m *= 0.9
            m += 0.1 * gr
            v *= 0.999
            v += 0.001 * gr * gr
            par -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w.astype(np.float32), b.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32)


def evaluate(name: str, p: np.ndarray, labels: list[tuple[str, ...]]) -> None:
    em_i = [CLASSES.index(c) for c in EMERGENCY_LABELS]
    em_p = p[:, em_i].sum(axis=1)
    others = [i for i, c in enumerate(CLASSES) if c not in EMERGENCY_LABELS]
    top = [CLASSES[others[j]] for j in p[:, others].argmax(axis=1)]
    is_em = np.array([any(k in EMERGENCY_LABELS for k in ks) for ks in labels])
    said = np.where(em_p >= SURE, "emergency", np.where(em_p >= ASK, "ask", np.array(top, dtype=object)))
    ok = [(s == "ask" and e) or (s == "emergency" and e) or (s in ks) for s, e, ks in zip(said, is_em, labels, strict=True)]
    print(f"  {name:8s} n={len(labels):5d} accuracy {100 * np.mean(ok):5.1f} %  emergency recall "
          f"{100 * np.mean(em_p[is_em] >= ASK):5.1f} % (sure {100 * np.mean(em_p[is_em] >= SURE):5.1f} %)  "
          f"non-emergencies asked {100 * np.mean((em_p[~is_em] >= ASK) & (em_p[~is_em] < SURE)):4.1f} % "
          f"called emergencies {100 * np.mean(em_p[~is_em] >= SURE):4.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--on", choices=("dev", "all"), default="dev")
    ap.add_argument("--l2", type=float, default=3e-3)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--folds", type=int, default=0, help="also k-fold cross-validation over the training utterances")
    a = ap.parse_args()
    t0 = time.perf_counter()
    x, y, splits, labels = dataset()
    print(f"features for {len(x)} utterances in {time.perf_counter() - t0:.1f} s")
    train = np.array([s == "dev" or (a.on == "all" and s == "test") for s in splits])
    base, x = x, with_neighbours(x, y, train)
    w, b, mean, scale = fit(x[train], y[train], a.l2)
    z = ((x - mean) / scale) @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for name in sorted(set(splits)):
        idx = [i for i, s in enumerate(splits) if s == name]
        evaluate(name + ("*" if train[idx[0]] else ""), p[idx], [labels[i] for i in idx])
    print("  (* trained on)")
    if a.folds:
        rows = np.flatnonzero(train)
        fold = np.arange(len(rows)) % a.folds
        held = np.zeros_like(p)
        for k in range(a.folds):
            inside = np.zeros(len(x), dtype=bool)
            inside[rows[fold != k]] = True
            x_k = with_neighbours(base, y, inside)  # the held-out fold's neighbours are not among them
            w_k, b_k, m_k, s_k = fit(x_k[rows[fold != k]], y[rows[fold != k]], a.l2)
            z_k = ((x_k[rows[fold == k]] - m_k) / s_k) @ w_k + b_k
            e = np.exp(z_k - z_k.max(axis=1, keepdims=True))
            held[rows[fold == k]] = e / e.sum(axis=1, keepdims=True)
        evaluate(f"{a.folds}-fold", held[rows], [labels[i] for i in rows])
    if a.write:
        np.savez_compressed(OUT, weights=w, bias=b, mean=mean, scale=scale, classes=np.array(CLASSES),
                            features=np.array(feature_names()), model_sha=np.array(MODEL_SHA256))
        np.savez_compressed(NEIGHBOURS, vectors=quantise(base[train, :DIM]), labels=y[train] > 0,
                            model_sha=np.array(MODEL_SHA256))
        print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()
