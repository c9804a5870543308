"""A tiny real int8 model, for tests of the bundle contract that need no task training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, write_bundle


def tiny_int8_model(n_inputs: int = 8, n_outputs: int = 3, seed: int = 0) -> bytes:
    """A two-layer dense net converted to full-integer int8 (a few seconds)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras, seed_everything

    seed_everything(seed)
    model = keras.Sequential(
        [
            keras.layers.Input((n_inputs,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(n_outputs),
        ]
    )
    representative = np.random.default_rng(seed).normal(size=(64, n_inputs)).astype(np.float32)
    return to_int8_tflite(model, representative)


def write_tiny_bundle(directory: Path, model_bytes: bytes) -> Bundle:
    """A schema-complete bundle around ``model_bytes`` (labels head, no real front end needed)."""
    from device_sim.interpreter import Int8Model

    model = Int8Model(model_bytes)
    return write_bundle(
        directory,
        model_bytes,
        task="kws",
        name="tiny-test",
        input=model.input_spec,
        output=model.output_spec,
        feature_config={"kind": "test"},
        head={"labels": ["a", "b", "c"]},
        metrics={"float": {"accuracy": 1.0}, "int8": {"accuracy": 1.0}},
        provenance={"seed": 0, "data": {"source": "test"}},
    )
