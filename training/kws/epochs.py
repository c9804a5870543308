"""Fresh augmentation every epoch: a Keras ``Sequence`` that re-augments the training clips.

The fixed recipe augmented each clip ``copies`` times once and showed the model the same copies
every epoch, so a small model could memorise them. Here every epoch draws new shifts, speeds,
noises, rooms and masks (``copies`` fresh versions of each clip per epoch, so the number of steps
is unchanged). Only one epoch of features is held in memory, which is also what lets a full
Speech Commands download (105 k clips) train without holding every augmented copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.keras_env import keras


@dataclass
class EpochSource:
    """What one epoch is made of: raw clips, targets, and the function that augments them.

    ``make_features(rng)`` returns ``(features, row_index)``: freshly augmented features of every
    clip (``copies`` times) plus silence examples, and which target row each example takes.
    """

    make_features: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    targets: np.ndarray  # (rows, classes) soft/one-hot targets or (rows,) label indices
    normalize: Callable[[np.ndarray], np.ndarray]


class FreshAugmentation(keras.utils.Sequence):
    """Batches of (features, targets); new augmentations and a new order after every epoch."""

    def __init__(self, source: EpochSource, batch_size: int, seed: int) -> None:
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        features, rows = self.source.make_features(self.rng)
        order = self.rng.permutation(len(rows))
        self.x = self.source.normalize(features[order]).astype(np.float32)
        self.y = self.source.targets[rows[order]]

    def __len__(self) -> int:
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[batch], self.y[batch]

    def on_epoch_end(self) -> None:
        self._draw()
