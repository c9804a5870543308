"""The one place that imports TensorFlow/Keras for training.

``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first imported, or ``tf.keras`` becomes
Keras 3 and tfmot's pruning wrappers fail. Import ``keras``, ``tf`` and ``tfmot`` from here.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf", "tfmot", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a run is reproducible from its bundle.json."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
