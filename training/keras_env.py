"""The one place that imports TensorFlow/Keras for training.

``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first imported, or ``tf.keras`` becomes
Keras 3 and tfmot's pruning wrappers fail. Import ``keras``, ``tf`` and ``tfmot`` from here.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

from device_sim.console import native_logs_quiet, native_output_quiet  # noqa: E402

# TensorFlow's C++ start-up logs (oneDNN, CUDA probing, CPU features) ignore TF_CPP_MIN_LOG_LEVEL
# since TF 2.17: when the command line asked for quiet output they are captured at the fd level.
with native_output_quiet():
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    tf.config.list_physical_devices()  # probes CUDA now (its "cuInit failed" line) not mid-build

if native_logs_quiet():
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|absl)(\..*)?")

__all__ = ["keras", "tf", "tfmot", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a run is reproducible from its bundle.json."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
