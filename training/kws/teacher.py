"""The KWS teacher: a linear head on Google's speech embedding, used only to label training clips.

``tinyfleet build kws --data DIR --teacher speech-embedding`` trains this head on the training
clips' embeddings (:mod:`training.kws.speech_embedding`) and hands its class probabilities to the
distillation blend of :mod:`training.distill` (temperature, weight, mixed with the hard labels).
The probabilities are *out of fold*: each training speaker's clips are scored by a head fitted on
the other speakers, so the soft labels say how a 12-way classifier that has never heard this voice
sees the clip — that is the knowledge the student lacks — and not the head's memory of it.

Measured on the dev folder (speaker-grouped 5-fold, seed 0): the head alone scores 92.6 ± 1.1 %
(docs/kws.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

TEACHER_NAME = "speech-embedding"
INNER_FOLDS = 5


def pooled(embeddings: np.ndarray) -> np.ndarray:
    """``(n, windows, 96)`` → ``(n, 192)``: mean and max over time (the word sits anywhere).

    Mean+max pooling scored 92.6 % vs 91.2 % for the flattened 16×96 vectors (5-fold, C=0.01).
    """
    return np.concatenate([embeddings.mean(axis=1), embeddings.max(axis=1)], axis=1)


@dataclass(frozen=True)
class EmbeddingHead:
    """Standardise + multinomial logistic regression; ``C`` is sklearn's inverse L2 strength."""

    c: float = 0.01
    max_iter: int = 300

    def fit(self, features: np.ndarray, labels: np.ndarray, n_classes: int):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.c, max_iter=self.max_iter)
        )
        model.fit(features, labels)
        return _FullProbabilities(model, n_classes)


@dataclass(frozen=True)
class _FullProbabilities:
    """Probabilities over all ``n_classes`` even when a fold lacked some label."""

    model: object
    n_classes: int

    def __call__(self, features: np.ndarray) -> np.ndarray:
        out = np.zeros((len(features), self.n_classes), dtype=np.float32)
        out[:, self.model.classes_] = self.model.predict_proba(features)
        return out


def out_of_fold_probabilities(
    embeddings: np.ndarray,
    labels: np.ndarray,
    speakers: np.ndarray,
    n_classes: int,
    *,
    head: EmbeddingHead = EmbeddingHead(),
    seed: int = 0,
) -> np.ndarray:
    """Teacher probabilities for every clip from a head that never saw that clip's speaker."""
    from sklearn.model_selection import GroupKFold

    features = pooled(embeddings)
    labels = np.asarray(labels)
    groups = np.asarray(speakers)
    folds = min(INNER_FOLDS, len(set(groups.tolist())))
    probabilities = np.zeros((len(labels), n_classes), dtype=np.float32)
    if folds < 2:
        return head.fit(features, labels, n_classes)(features)
    order = np.random.default_rng(seed).permutation(len(labels))
    splitter = GroupKFold(n_splits=folds)
    for train, test in splitter.split(features[order], labels[order], groups[order]):
        train, test = order[train], order[test]
        probabilities[test] = head.fit(features[train], labels[train], n_classes)(features[test])
    agreement = float(np.mean(np.argmax(probabilities, axis=1) == labels))
    log.info("teacher (out-of-fold) agrees with the labels on %.1f %% of clips", 100 * agreement)
    return probabilities
