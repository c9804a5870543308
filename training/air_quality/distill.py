"""Distillation from gradient boosting for the air-quality net: the trees label inputs the data lacks.

A small dense net extrapolates linearly into combinations of sensor readings it never saw (a month
where the CO sensor reads low while the NMHC sensor reads normal), while axis-aligned trees stay
flat there and lean on the most reliable sensor. So a ``HistGradientBoostingRegressor`` per target
(on the net's own front-end features, in the log-space z the head decodes) labels extra windows
sampled around the training distribution: a training window whose inputs are, each with
probability ``swap``, taken from another random training window (all window positions of an input
move together, so each input's own recent history stays intact). The net then trains on the real
windows with their references plus these windows with the teacher's concentrations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.tasks.air_quality import CurvePrior, OutputDecoder
from training.air_quality.data import input_columns, log_z


def sample_windows(
    x: np.ndarray, config: AirQualityWindowConfig, n: int, swap: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` windows: random training windows with each input swapped in from another one."""
    base = x[rng.integers(0, len(x), n)].copy()
    for columns in input_columns(config):
        take = rng.random(n) < swap
        donors = x[rng.integers(0, len(x), int(take.sum()))]
        base[np.ix_(np.flatnonzero(take), columns)] = donors[:, columns]
    return base


def teacher_concentrations(
    x_train: np.ndarray,
    z_train: np.ndarray,
    x_new: np.ndarray,
    decode,
    seed: int,
) -> np.ndarray:
    """Fit one gradient-boosting model per target on (x, z) and decode its z on ``x_new``."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    z_new = np.zeros((len(x_new), z_train.shape[1]))
    with threadpool_limits(1):
        for j in range(z_train.shape[1]):
            present = np.isfinite(z_train[:, j])
            model = HistGradientBoostingRegressor(random_state=seed, max_iter=300)
            model.fit(x_train[present], z_train[present, j])
            z_new[:, j] = model.predict(x_new)
    return decode(z_new)


def with_teacher_windows(
    x_train: np.ndarray,
    y_train: np.ndarray,
    y_fit: np.ndarray,
    head: dict[str, Any],
    config: AirQualityWindowConfig,
    ratio: float,
    seed: int,
    swap: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows plus ``ratio``× as many sampled ones labelled by gradient boosting."""
    rng = np.random.default_rng(seed + 1)
    x_new = sample_windows(x_train, config, int(ratio * len(x_train)), swap, rng)
    z_train = np.column_stack([log_z(y_train[:, j], t) for j, t in enumerate(head["targets"])])
    decoder = OutputDecoder.from_head({"targets": head["targets"]})
    y_new = teacher_concentrations(x_train, z_train, x_new, decoder.values, seed)
    prior_new = (
        CurvePrior.from_dict(head["prior"])(x_new) if head.get("prior") else np.zeros_like(y_new)
    )
    x_fit = np.concatenate([x_train, x_new.astype(x_train.dtype)])
    return x_fit, np.concatenate([y_fit, np.concatenate([y_new, prior_new], axis=1)])
