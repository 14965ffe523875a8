"""The callers the head was trained on, as evidence: how near the utterance is to the nearest
training utterances of each intent.

The head's logistic regression weighs the sentence vector linearly; a caller who says nearly
what a training caller said ("my cheek's ballooned up" beside "his face has blown up") is
better told by that neighbour. For each intent: the cosine of the nearest training
utterance labelled with it and the mean of the ``K`` nearest. The vectors (int8, unit
vectors x 127) ship in ``neighbours.npz``, written with the head by ``bench/train_head.py``
and tied to the same encoder model: 2.4 MB on disk, 15 MB in memory as float32 (9,684 x 384),
a matrix product per utterance (about 1 ms).
When training, each training utterance is read without itself (``exclude``).
"""

from __future__ import annotations

import numpy as np

K = 3


def quantise(vectors: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)


class Neighbours:
    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """``vectors``: (n, dim) unit vectors (or their int8 form); ``labels``: (n, classes),
        True where the utterance carries that class."""
        v = vectors.astype(np.float32)
        if vectors.dtype == np.int8:
            v /= 127.0
        self._vectors = v
        self._members = [np.flatnonzero(labels[:, c]) for c in range(labels.shape[1])]

    @staticmethod
    def names(classes: tuple[str, ...]) -> list[str]:
        return [f"near:{c}{kind}" for c in classes for kind in ("", f"@{K}")]

    def features(self, vecs: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """(m, 2 * classes) for ``vecs`` (m, dim): per class the nearest and the mean of the
        ``K`` nearest; ``exclude[i]``: a row of the training vectors query ``i`` may not use
        (itself), or -1."""
        sims = vecs.astype(np.float32) @ self._vectors.T
        if exclude is not None:
            rows = np.flatnonzero(exclude >= 0)
            sims[rows, exclude[rows]] = -1.0
        out = np.full((len(vecs), 2 * len(self._members)), -1.0, dtype=np.float32)
        for c, members in enumerate(self._members):
            if len(members) == 0:
                continue
            s = sims[:, members]
            k = min(K, s.shape[1])
            top = -np.partition(-s, k - 1, axis=1)[:, :k]
            out[:, 2 * c] = top.max(axis=1)
            out[:, 2 * c + 1] = top.mean(axis=1)
        return out
