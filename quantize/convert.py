"""Full-integer int8 conversion with a representative dataset drawn from the training data."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from device_sim import console
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
    calibration = min(len(representative), 300)
    bar = console.progress(calibration, "int8 conversion: calibrating", "windows")

    def batches() -> Iterator[list[np.ndarray]]:
        for batch in representative_batches(representative):
            yield batch
            bar.update()

    converter.representative_dataset = batches
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with bar, console.native_output_quiet():  # the converter's C++ logs and settings dump
        return bytes(converter.convert())
