"""Full-integer int8 conversion with a representative dataset drawn from the training data."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from training.keras_env import keras, tf

log = logging.getLogger(__name__)


def representative_batches(samples: np.ndarray, limit: int = 300) -> Iterator[list[np.ndarray]]:
    """Yield single-example batches for the converter's calibration (activation ranges)."""
    for sample in samples[:limit]:
        yield [np.asarray(sample, dtype=np.float32)[np.newaxis]]


def to_int8_tflite(model: keras.Model, representative: np.ndarray) -> bytes:
    """Convert to a TFLite flatbuffer whose weights, activations, input and output are all int8.

    Integer-only I/O is what TFLM firmware expects; calibration uses up to 300 training windows.
    """
    if len(representative) == 0:
        raise ValueError("int8 conversion needs at least one representative sample")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_batches(representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())
