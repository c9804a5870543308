"""The float-vs-int8 report and QAT on real (tiny) pruned models converted to int8."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from device_sim.interpreter import Int8Model
from device_sim.model_graph import read_model
from quantize.report import int8_loss, int8_weight_sparsity, quantization_report, size_report

pytestmark = pytest.mark.needs_tf


@functools.cache
def _pruned_regressor():
    """A small MLP pruned to ~60 % with the project's fit loop, and its data."""
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import keras
    from training.pruning import PruningPlan

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12)).astype(np.float32)
    y = (np.sin(x[:, :3]).sum(1, keepdims=True) + 0.1 * x[:, 3:4] ** 3).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.Dense(32, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    plan = FitPlan(epochs=8, pruning=PruningPlan(target_sparsity=0.6))
    result = fit_pruned(model, x, y, plan, loss="mse")
    return result, x


@functools.cache
def _ptq_bytes() -> bytes:
    from quantize.convert import to_int8_tflite

    result, x = _pruned_regressor()
    return to_int8_tflite(result.model, x[:200])


def test_int8_sparsity_read_from_the_flatbuffer_is_at_least_the_pruned_fraction():
    result, _ = _pruned_regressor()
    sparsity = int8_weight_sparsity(read_model(_ptq_bytes()))
    assert sparsity["weights"] == 12 * 64 + 64 * 32 + 32
    # Pruned zeros stay zero in int8 (symmetric weights), and rounding may add a few more.
    assert sparsity["overall"] >= result.sparsity["overall"] - 1e-3
    assert sparsity["overall"] > 0.5


def test_pruned_zeros_save_bytes_only_once_gzipped():
    size = size_report(_ptq_bytes())
    assert size["raw_saving_bytes"] == 0
    assert size["gzip_saving_bytes"] > 0.05 * size["tflite_gzip_bytes"]
    assert size["tflite_gzip_bytes"] < size["tflite_bytes"]
    assert "compressed" in size["note"] and "sparse kernels" in size["note"]


def test_int8_loss_verdicts_use_the_task_tolerance_in_the_right_direction():
    kws = int8_loss("kws", {"accuracy": 0.90}, {"accuracy": 0.86})
    assert kws["loss"] == pytest.approx(0.04) and kws["within_tolerance"] is False
    vibration = int8_loss("vibration", {"auc": 0.95}, {"auc": 0.96})
    assert vibration["loss"] < 0 and vibration["within_tolerance"] is True
    air = int8_loss(
        "air_quality",
        {"targets": {"CO": {"mae": 0.40}, "NO2": {"mae": 20.0}}},
        {"targets": {"CO": {"mae": 0.41}, "NO2": {"mae": 22.0}}},
    )
    assert air["loss"] == pytest.approx(0.10) and air["within_tolerance"] is False
    assert air["per_target_relative_loss"]["CO"] == pytest.approx(0.025)


def test_report_combines_accuracy_sparsity_and_sizes_of_the_int8_model():
    report = quantization_report(
        "kws", _ptq_bytes(), {"accuracy": 0.9}, {"accuracy": 0.895}, float_sparsity=0.6
    )
    assert report["accuracy"]["within_tolerance"] is True
    assert report["int8_weight_sparsity"]["float_kernels_overall"] == 0.6
    assert report["size"]["tflite_bytes"] == len(_ptq_bytes())


def test_qat_keeps_pruned_zeros_and_tracks_the_float_model():
    from quantize.qat import QatPlan, qat_int8_tflite

    result, x = _pruned_regressor()
    qat = qat_int8_tflite(result.model, x[:200], QatPlan(epochs=2, min_steps=200))
    sparsity = int8_weight_sparsity(read_model(qat))
    assert sparsity["overall"] >= result.sparsity["overall"] - 1e-3
    reference = result.model.predict(x[200:], verbose=0)[:, 0]
    estimate = Int8Model(qat).predict_batch(x[200:])[:, 0]
    assert np.corrcoef(reference, estimate)[0, 1] > 0.99
