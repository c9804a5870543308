"""Learning-rate schedules the tasks share."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def cosine_decay(learning_rate: float, epochs: int, floor: float) -> Callable[[int, float], float]:
    """Per-epoch rate: cosine decay from ``learning_rate`` to ``floor × learning_rate`` over ``epochs``.

    ``floor`` is each task's own (``LEARNING_RATE_FLOOR`` in its train module); past the last
    epoch the rate stays at the floor. The second argument (Keras's current rate) is ignored.
    """

    def rate(epoch: int, _current: float = 0.0) -> float:
        angle = np.pi * min(epoch, epochs) / max(epochs, 1)
        return float(learning_rate * (floor + (1 - floor) * 0.5 * (1 + np.cos(angle))))

    return rate


def cosine_callback(learning_rate: float, epochs: int, floor: float):
    """:func:`cosine_decay` as a ``keras.callbacks.LearningRateScheduler``."""
    from training.keras_env import keras

    return keras.callbacks.LearningRateScheduler(cosine_decay(learning_rate, epochs, floor))
