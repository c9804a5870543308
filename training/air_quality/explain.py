"""Which inputs each target leans on: permutation importance on the evaluation rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.tasks.air_quality import decode_outputs
from training.air_quality.data import input_columns
from training.air_quality.presets import EXPLAIN_TOP


def _per_target_mae(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    err = np.abs(pred - y)
    return np.array([np.mean(err[np.isfinite(y[:, j]), j]) for j in range(y.shape[1])])


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    head: dict[str, Any],
    config: AirQualityWindowConfig,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Increase of each target's MAE when one input (all its window positions) is shuffled."""
    rng = np.random.default_rng(seed)
    reference = _per_target_mae(decode_outputs(predict(x), head, x), y)
    offsets = dict(zip(config.inputs, input_columns(config), strict=True))
    result: dict[str, dict[str, float]] = {t["name"]: {} for t in head["targets"]}
    order = rng.permutation(len(x))
    for name, columns in offsets.items():
        shuffled = x.copy()
        shuffled[:, columns] = x[order][:, columns]
        increase = _per_target_mae(decode_outputs(predict(shuffled), head, shuffled), y) - reference
        for target, delta in zip(head["targets"], increase, strict=True):
            result[target["name"]][name] = round(float(delta), 4)
    return result


def top_inputs(importance: dict[str, dict[str, float]], head: dict[str, Any]) -> dict[str, list]:
    top = {}
    for target in head["targets"]:
        ranked = sorted(importance[target["name"]].items(), key=lambda kv: -kv[1])
        top[target["key"]] = [name for name, _ in ranked[:EXPLAIN_TOP]]
    return top
