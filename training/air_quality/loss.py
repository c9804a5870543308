"""The air-quality training loss: masked MAE in target units through the device's output decoding,
and optional per-window weights that favour recent hours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from device_sim.sources.uci_air_csv import AirQualityTable
from device_sim.tasks.air_quality import OUTPUT_CLIP


def log_target_mae(head: dict[str, Any]) -> Callable:
    """The training loss: MAE in target units (divided by each target's spread), masked.

    ``y_true`` is ``[concentrations, prior z]`` side by side (``2 × n_targets`` columns): the model
    outputs the residual of the float curve prior in log-space z units, scaled per target
    (decoded exactly as :class:`device_sim.tasks.air_quality.OutputDecoder` does on the device), but
    the error is measured on the concentrations themselves, because MAE in µg/m³ is what is
    reported. Missing (NaN) targets contribute nothing; NaNs are replaced before the subtraction so
    that none reaches the gradient.
    """
    from training.keras_env import tf

    def constant(values):
        return tf.constant([float(v) for v in values], dtype=tf.float32)

    targets = head["targets"]
    n_targets = len(targets)
    log_mean, log_std, offset, scale = (
        constant(t[key] for t in targets) for key in ("log_mean", "log_std", "offset", "std")
    )
    prior = head.get("prior")
    residual_scale = constant(prior["residual_scale"] if prior else [1.0] * n_targets)

    def masked_mae(y_true, y_pred):
        concentration, prior_z = y_true[:, :n_targets], y_true[:, n_targets : 2 * n_targets]
        present = tf.math.is_finite(concentration)
        clean = tf.where(present, concentration, tf.zeros_like(concentration))
        z = tf.clip_by_value(prior_z + residual_scale * y_pred, -OUTPUT_CLIP, OUTPUT_CLIP)
        value = tf.exp(z * log_std + log_mean) - offset
        error = tf.abs(clean - value) / scale * tf.cast(present, y_pred.dtype)
        return tf.reduce_sum(error, axis=-1) / float(n_targets)

    return masked_mae


def recency_weights(
    table: AirQualityTable, end_rows: np.ndarray, half_life_days: float, n_fit: int
) -> np.ndarray | None:
    """Loss weights that halve every ``half_life_days`` before the last training hour (sensors
    drift: recent months say more about the next one), mean 1 over the real windows; the
    teacher-labelled windows appended after them (``n_fit`` rows in all) get weight 1.
    ``half_life_days <= 0`` or no timestamps: None (every window counts the same)."""
    if half_life_days <= 0 or table.timestamps is None:
        return None
    times = np.asarray(table.timestamps, dtype=np.float64)[end_rows]
    age_days = (times.max() - times) / 86400.0
    weights = 0.5 ** (age_days / half_life_days)
    weights = weights / weights.mean()
    return np.concatenate([weights, np.ones(n_fit - len(weights))]).astype(np.float32)
