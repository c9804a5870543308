"""The baselines an air-quality soft sensor must beat, exactly as a user would fit them.

scikit-learn with default settings, per target, on the raw columns of the table (no log, no
normalisation: what a 20-line script does), in two feature sets:

* ``hour``: the hour's own readings — the five MOX responses, ``T``, ``RH``, ``AH``;
* ``lagged``: the same readings at ``t``, ``t-1 h`` and ``t-2 h`` plus the hour of day (0–23).

Models: ``LinearRegression``, ``GradientBoostingRegressor`` and ``HistGradientBoostingRegressor``
(both gradient boosting flavours, ``random_state`` fixed, everything else default). Each is fitted on
the training rows where its inputs and the target are present and predicts the evaluation rows the
micromodel is scored on, so every MAE compares identical rows. The "best baseline" of a target is the
one with the lowest MAE: the bar the int8 model has to clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim.sources.uci_air_csv import SENSOR_COLUMNS, WEATHER_COLUMNS, AirQualityTable

LAGS_HOURS = (0, 1, 2)
FEATURE_SETS = ("hour", "lagged")
MODELS = ("linear", "gbm", "hist_gbm")


@dataclass(frozen=True)
class BaselinePredictions:
    """Per baseline name (``"{model}_{features}"``): predictions ``(n_eval, n_targets)``, NaN where
    the baseline's own inputs are missing at an evaluation row."""

    predictions: dict[str, np.ndarray]

    def mae(self, reference: np.ndarray) -> dict[str, np.ndarray]:
        """Per baseline, the MAE per target over rows with a reference (NaN if none)."""
        result = {}
        for name, pred in self.predictions.items():
            error = np.abs(pred - reference)
            result[name] = np.array(
                [
                    float(np.mean(error[np.isfinite(error[:, j]), j]))
                    if np.isfinite(error[:, j]).any()
                    else np.nan
                    for j in range(reference.shape[1])
                ]
            )
        return result


def baseline_columns(table: AirQualityTable) -> tuple[str, ...]:
    return tuple(c for c in SENSOR_COLUMNS + WEATHER_COLUMNS if table.has(c))


def baseline_features(table: AirQualityTable, kind: str) -> np.ndarray:
    """``(n_rows, n_features)`` raw features of every row; NaN where an input (or a lag) is missing."""
    rows = table.matrix(baseline_columns(table))
    if kind == "hour":
        return rows
    if kind != "lagged":
        raise ValueError(f"unknown baseline feature set {kind!r}; use {FEATURE_SETS}")
    parts = []
    for lag in LAGS_HOURS:
        shifted = np.full_like(rows, np.nan)
        shifted[lag:] = rows[: len(rows) - lag]
        parts.append(shifted)
    if table.has("hour"):
        parts.append(table.column("hour")[:, None])
    return np.concatenate(parts, axis=1)


def fit_baselines(
    table: AirQualityTable,
    targets: list[str],
    train_rows: np.ndarray,
    eval_rows: np.ndarray,
    seed: int = 0,
    cache: Path | None = None,
) -> BaselinePredictions:
    """Fit every baseline on ``train_rows`` (row indices) and predict ``eval_rows``.

    Predictions are clipped at 0 (a concentration); the clipping only helps the baselines.
    ``cache`` (a folder) keeps the predictions keyed by the data, rows, targets and seed, so a
    benchmark re-run does not refit 18 gradient-boosting models per fold.
    """
    if cache is not None:
        key = hashlib.sha256()
        for part in (table.values, np.asarray(train_rows), np.asarray(eval_rows)):
            # the shape too: train rows [0, b) + eval [b, c) must not collide with [0, a) + [a, c)
            key.update(repr(np.shape(part)).encode())
            key.update(np.ascontiguousarray(part).tobytes())
        key.update(repr((targets, seed, table.columns)).encode())
        path = Path(cache) / f"baselines-{key.hexdigest()[:24]}.npz"
        if path.is_file():
            with np.load(path) as stored:
                return BaselinePredictions({name: stored[name] for name in stored.files})
        result = fit_baselines(table, targets, train_rows, eval_rows, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **result.predictions)
        return result
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from threadpoolctl import threadpool_limits

    y = table.matrix(targets)
    factories = {
        "linear": LinearRegression,
        "gbm": lambda: GradientBoostingRegressor(random_state=seed),
        "hist_gbm": lambda: HistGradientBoostingRegressor(random_state=seed),
    }
    predictions: dict[str, np.ndarray] = {}
    # One OpenMP thread: on a shared 2-core machine HistGradientBoosting's spinning threads were
    # 10-50x slower than one thread (1.5 s vs 83 s per target at load 8).
    with threadpool_limits(1):
        for kind in FEATURE_SETS:
            features = baseline_features(table, kind)
            usable = np.all(np.isfinite(features), axis=1)
            x_eval = features[eval_rows]
            eval_ok = usable[eval_rows]
            for model_name in MODELS:
                pred = np.full((len(eval_rows), len(targets)), np.nan)
                for j in range(len(targets)):
                    rows = train_rows[usable[train_rows] & np.isfinite(y[train_rows, j])]
                    if len(rows) < 10 or not eval_ok.any():
                        continue
                    model = factories[model_name]().fit(features[rows], y[rows, j])
                    pred[eval_ok, j] = np.maximum(model.predict(x_eval[eval_ok]), 0.0)
                predictions[f"{model_name}_{kind}"] = pred
    return BaselinePredictions(predictions)
