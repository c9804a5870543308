"""Helpers for the firmware tests: tiny real int8 models and bundles, gcc, the TFLM stubs.

The models are small tf_keras networks converted with the project's own ``to_int8_tflite`` (a few
seconds), so firmware tests never wait for task training. Results are cached per test session.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, write_bundle
from device_sim.interpreter import Int8Model

TFLM_STUB_DIR = Path(__file__).parent / "firmware_tflm_stub"
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror"]


@functools.cache
def tiny_conv_model(input_shape: tuple[int, ...] = (10, 8, 1), classes: int = 4) -> bytes:
    """A small conv → depthwise → pool → dense → softmax int8 model (about 4 KB)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(classes)(x)
    outputs = keras.layers.Softmax()(x)
    model = keras.Model(inputs, outputs)
    representative = np.random.default_rng(0).normal(size=(64, *input_shape)).astype(np.float32)
    return to_int8_tflite(model, representative)


@functools.cache
def tiny_dense_model(features: int, outputs: int = 1) -> bytes:
    """A small dense regressor/scorer on a flat feature vector (about 2 KB)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    out = keras.layers.Dense(outputs)(x)
    model = keras.Model(inputs, out)
    representative = np.random.default_rng(1).normal(size=(64, features)).astype(np.float32)
    return to_int8_tflite(model, representative)


def bundle_for(
    directory: Path,
    model_bytes: bytes,
    *,
    task: str,
    feature_config: dict,
    head: dict,
) -> Bundle:
    """Write a real bundle around ``model_bytes`` (quantization read back from the model)."""
    model = Int8Model(model_bytes)
    return write_bundle(
        directory,
        model_bytes,
        task=task,
        name=f"tiny-{task}",
        input=model.input_spec,
        output=model.output_spec,
        feature_config=feature_config,
        head=head,
    )


def kws_bundle(directory: Path) -> Bundle:
    """A KWS bundle: log-mel of 200 ms clips (9 frames x 8 mels) and a 4-label classifier."""
    return bundle_for(
        directory,
        tiny_conv_model((9, 8, 1), 4),
        task="kws",
        feature_config={"kind": "log_mel", "clip_ms": 200, "n_mels": 8},
        head={"labels": ["yes", "no", "_silence_", "_unknown_"]},
    )


def compiler() -> str:
    path = shutil.which("gcc")
    if path is None:
        raise RuntimeError("gcc is not installed: apt-get install gcc g++ (make setup does this)")
    return path


def run_gcc(args: list[str], cwd: Path, cxx: bool = False) -> None:
    """Run gcc/g++; on failure raise with the compiler's diagnostics."""
    tool = "g++" if cxx else compiler()
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed:\n{result.stderr}")
