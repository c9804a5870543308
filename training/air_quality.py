"""Air-quality soft sensor: estimate CO, NO2 and benzene from five MOX sensors, weather and time.

Data: the UCI Air Quality CSV (or a generic CSV, ``--column SOURCE=CANONICAL``) via
:mod:`device_sim.sources.uci_air_csv`, or the seeded simulator when no ``--data`` is given.

* Inputs per hour: log responses of ``PT08.S1..S5``, ``T``, ``RH``, ``AH``, and the clock's hour of day
  (sin/cos) and weekend flag; a window of the past ``window_rows`` hours, flattened, normalised with
  statistics of the training part only (:mod:`device_sim.features.air_quality`).
* Split by time: windows ending in the first ``train_fraction`` of the rows train, the rest evaluate;
  nothing is shuffled across the split.
* Gaps: a window with any missing input is skipped (never imputed) — on the device too. Targets may
  be missing per row: the loss is masked (absolute error in target units, scaled per target,
  over present values only), and each target's metrics use only rows where its reference exists.
* Model: a small dense net over the window whose outputs are log-space z-scores of the targets
  (see :mod:`device_sim.tasks.air_quality`), trained with magnitude pruning and a cosine learning
  rate decay.
* Baselines on the very same rows and features: ordinary least squares and sklearn's
  HistGradientBoostingRegressor (absolute-error loss: the metric is MAE). Their predictions are stored
  with the evaluation set, so float and int8 are compared with identical baseline figures.
* Explanation: permutation importance per input (all window positions of an input shuffled together)
  on the evaluation rows, as the increase in each target's MAE.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import DataError
from device_sim.features.air_quality import (
    FEATURES_PER_TRANSFORM,
    AirQualityWindowConfig,
    sliding_windows,
)
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.uci_air_csv import (
    SENSOR_COLUMNS,
    AirQualityTable,
    load_csv,
)
from device_sim.tasks.air_quality import DEFAULT_BANDS, OUTPUT_CLIP, band_indices, decode_outputs
from training.stage import TrainedModel, TrainOptions

log = logging.getLogger(__name__)

INPUT_TRANSFORMS = {
    **{name: "log" for name in SENSOR_COLUMNS},
    "T": "linear",
    "RH": "linear",
    "AH": "linear",
    "hour": "hour",
    "weekday": "weekend",
}
TARGETS = {
    "CO(GT)": ("CO", "mg/m³"),
    "NO2(GT)": ("NO2", "µg/m³"),
    "C6H6(GT)": ("C6H6", "µg/m³"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "sim_days": 240,
        "window_rows": 3,
        "width": 32,
        "depth": 2,
        "epochs": 40,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "sparsity": 0.5,
        "input_noise": 0.0,
    },
    "full": {
        "sim_days": 540,
        "window_rows": 3,
        "width": 32,
        "depth": 2,
        "epochs": 150,
        "batch_size": 64,
        "learning_rate": 2e-3,
        "sparsity": 0.5,
        "input_noise": 0.0,
    },
}
# Knobs `tinyfleet tune` may override (options.knob), with the values worth trying.
SEARCH_SPACE: dict[str, list[Any]] = {
    "window_rows": [1, 3, 6, 12],
    "width": [16, 24, 32, 48],
    "depth": [1, 2, 3],
    "learning_rate": [1e-3, 2e-3, 3e-3, 5e-3],
    "epochs": [40, 80, 150],
    "sparsity": [0.0, 0.3, 0.5, 0.7],
    "input_noise": [0.0, 0.05, 0.1],
}
HEADLINE_METRIC = "mae_relative"
TRAIN_FRACTION = 0.75
MIN_TARGET_VALUES = 50  # a target needs this many present values in each part to be modelled
REPRESENTATIVE_WINDOWS = 300
EXPLAIN_TOP = 2


def load_table(options: TrainOptions, *, days: int | None = None) -> AirQualityTable:
    """The dataset: ``options.data`` (UCI/generic CSV) or ``days`` of the seeded simulator."""
    if options.data is not None:
        return load_csv(options.data, options.column_map)
    n_days = days or options.knob("sim_days", PRESETS[options.preset]["sim_days"])
    return simulate(24 * int(n_days), seed=options.seed)


def choose_inputs(table: AirQualityTable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Inputs the table has (in canonical order) and their transforms; needs ≥ 1 MOX sensor."""
    inputs = tuple(name for name in INPUT_TRANSFORMS if table.has(name))
    if not any(name in SENSOR_COLUMNS for name in inputs):
        raise DataError(
            f"{table.report.source or 'the data'} has none of the sensor columns "
            f"{', '.join(SENSOR_COLUMNS)}; map yours with --column SOURCE=CANONICAL"
        )
    return inputs, tuple(INPUT_TRANSFORMS[name] for name in inputs)


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M")


def windowed(
    table: AirQualityTable, config: AirQualityWindowConfig, targets: list[str]
) -> dict[str, np.ndarray]:
    """Features of every window with complete inputs, its end row and the targets at that row.

    Windows with a missing input are dropped (counted in ``skipped``); target values may be NaN.
    """
    rows = table.matrix(config.inputs)
    windows = sliding_windows(rows, config.window_rows)
    end_rows = np.arange(config.window_rows - 1, len(rows))
    complete = np.all(np.isfinite(windows), axis=(1, 2))
    frontend = config.build()
    y = table.matrix(targets)[end_rows] if targets else np.empty((len(end_rows), 0))
    return {
        "x": frontend.batch(windows[complete]) if complete.any() else np.empty((0, 0), np.float32),
        "y": y[complete],
        "end_row": end_rows[complete],
        "skipped": np.array(int((~complete).sum())),
    }


def window_mlp(
    n_features: int, n_targets: int, *, width: int = 32, depth: int = 2, input_noise: float = 0.0
):
    """A small dense net over the flattened window: ``depth`` ReLU layers of ``width`` units.

    ``input_noise`` (σ in normalised units) adds Gaussian noise to the features while training only
    (it is no layer of the int8 model): a regulariser against slow sensor drift.
    """
    from training.keras_env import keras

    inputs = keras.Input(shape=(n_features,), name="window")
    x = inputs
    if input_noise > 0:
        x = keras.layers.GaussianNoise(input_noise, name="drift_noise")(x)
    for i in range(depth):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(n_targets, name="z_scores")(x)
    return keras.Model(inputs, outputs, name="air_quality_mlp")


def log_target_mae(head: dict[str, Any]) -> Callable:
    """The training loss: MAE in target units (divided by each target's spread), masked.

    The model outputs log-space z-scores (decoded exactly as :func:`decode_outputs` does on the
    device), but the error is measured on the concentrations themselves, because MAE in µg/m³ is
    what is reported. Missing (NaN) targets contribute nothing; NaNs are replaced before the
    subtraction so that none reaches the gradient.
    """
    from training.keras_env import tf

    def constant(key: str):
        return tf.constant([float(t[key]) for t in head["targets"]], dtype=tf.float32)

    log_mean, log_std, offset, scale = (
        constant("log_mean"),
        constant("log_std"),
        constant("offset"),
        constant("std"),
    )
    n_targets = float(len(head["targets"]))

    def masked_mae(y_true, y_pred):
        present = tf.math.is_finite(y_true)
        clean = tf.where(present, y_true, tf.zeros_like(y_true))
        z = tf.clip_by_value(y_pred, -OUTPUT_CLIP, OUTPUT_CLIP)
        value = tf.exp(z * log_std + log_mean) - offset
        error = tf.abs(clean - value) / scale * tf.cast(present, y_pred.dtype)
        return tf.reduce_sum(error, axis=-1) / n_targets

    return masked_mae


def cosine_schedule(learning_rate: float, epochs: int) -> Callable:
    """Cosine decay from ``learning_rate`` to 2 % of it over the run (per epoch).

    Measured on the simulator: without the decay the MAE of every target is 5-15 % worse.
    """
    from training.keras_env import keras

    def rate(epoch: int, _current: float = 0.0) -> float:
        progress = min(epoch / max(epochs, 1), 1.0)
        return float(learning_rate * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress))))

    return keras.callbacks.LearningRateScheduler(rate)


def target_head(targets: list[str], y_train: np.ndarray) -> list[dict[str, Any]]:
    """Per target: name, key, unit and the training-part statistics of the output encoding.

    ``offset`` (10 % of the mean) keeps the log finite at zero concentration.
    """
    entries = []
    for j, name in enumerate(targets):
        column = y_train[np.isfinite(y_train[:, j]), j]
        offset = 0.1 * max(float(np.mean(column)), 1e-3)
        logs = np.log(np.maximum(column, 0.0) + offset)
        key, unit = TARGETS[name]
        entries.append(
            {
                "name": name,
                "key": key,
                "unit": unit,
                "log_mean": float(np.mean(logs)),
                "log_std": float(max(np.std(logs), 1e-6)),
                "offset": offset,
                "mean": float(np.mean(column)),
                "std": float(max(np.std(column), 1e-6)),
            }
        )
    return entries


def fit_baselines(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Linear regression and gradient boosting per target, trained on present targets only."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from threadpoolctl import threadpool_limits

    out = {
        "baseline_linear": np.full((len(x_test), y_train.shape[1]), np.nan),
        "baseline_gbm": np.full((len(x_test), y_train.shape[1]), np.nan),
    }
    # One OpenMP thread: on a shared 2-core machine, HistGradientBoosting's spinning threads are
    # 10-50x slower than one thread (measured: 1.5 s vs 83 s per target at load 8).
    with threadpool_limits(1):
        for j in range(y_train.shape[1]):
            present = np.isfinite(y_train[:, j])
            linear = LinearRegression().fit(x_train[present], y_train[present, j])
            gbm = HistGradientBoostingRegressor(loss="absolute_error", random_state=seed)
            gbm.fit(x_train[present], y_train[present, j])
            out["baseline_linear"][:, j] = np.maximum(linear.predict(x_test), 0.0)
            out["baseline_gbm"][:, j] = np.maximum(gbm.predict(x_test), 0.0)
    return out


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
    reference = _per_target_mae(decode_outputs(predict(x), head), y)
    offsets, start = {}, 0
    for name, transform in zip(config.inputs, config.transforms, strict=True):
        width = FEATURES_PER_TRANSFORM[transform]
        offsets[name] = [
            row * config.features_per_row + start + k
            for row in range(config.window_rows)
            for k in range(width)
        ]
        start += width
    result: dict[str, dict[str, float]] = {t["name"]: {} for t in head["targets"]}
    order = rng.permutation(len(x))
    for name, columns in offsets.items():
        shuffled = x.copy()
        shuffled[:, columns] = x[order][:, columns]
        increase = _per_target_mae(decode_outputs(predict(shuffled), head), y) - reference
        for target, delta in zip(head["targets"], increase, strict=True):
            result[target["name"]][name] = round(float(delta), 4)
    return result


def _top_inputs(importance: dict[str, dict[str, float]], head: dict[str, Any]) -> dict[str, list]:
    top = {}
    for target in head["targets"]:
        ranked = sorted(importance[target["name"]].items(), key=lambda kv: -kv[1])
        top[target["key"]] = [name for name, _ in ranked[:EXPLAIN_TOP]]
    return top


def train(options: TrainOptions) -> TrainedModel:
    """Dataset → time split → windows → baselines → pruned dense net → float metrics."""
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import seed_everything
    from training.pruning import PruningPlan

    preset = PRESETS[options.preset]
    knob = options.knob
    seed_everything(options.seed)
    table = load_table(options)
    inputs, transforms = choose_inputs(table)
    split_row = int(len(table) * TRAIN_FRACTION)
    window_rows = int(knob("window_rows", preset["window_rows"]))
    config = AirQualityWindowConfig.fitted(
        inputs,
        transforms,
        table.matrix(inputs)[:split_row],
        window_rows=window_rows,
        row_seconds=table.row_seconds,
    )
    candidates = [name for name in TARGETS if table.has(name)]
    data = windowed(table, config, candidates)
    train_part = data["end_row"] < split_row
    test_part = ~train_part
    targets = [
        name
        for j, name in enumerate(candidates)
        if np.isfinite(data["y"][train_part, j]).sum() >= MIN_TARGET_VALUES
        and np.isfinite(data["y"][test_part, j]).sum() >= 1
    ]
    if not targets:
        raise DataError(
            f"{table.report.source}: no target among {', '.join(TARGETS)} has {MIN_TARGET_VALUES} "
            "reference values in the training part and any in the evaluation part; a soft sensor "
            "needs reference measurements to learn from"
        )
    keep = [candidates.index(name) for name in targets]
    y_all = data["y"][:, keep]
    has_target = np.isfinite(y_all).any(axis=1)
    train_rows = train_part & has_target
    test_rows = test_part & has_target
    x_train, y_train = data["x"][train_rows], y_all[train_rows]
    x_test, y_test = data["x"][test_rows], y_all[test_rows]
    if len(x_train) < 100 or len(x_test) < 10:
        raise DataError(
            f"{table.report.source}: only {len(x_train)} training and {len(x_test)} evaluation "
            f"windows have complete inputs and a reference; need ≥ 100 and ≥ 10 (more data, or "
            f"fewer gaps)"
        )

    head: dict[str, Any] = {
        "targets": target_head(targets, y_train),
        "output": "per target: value = exp(output * log_std + log_mean) - offset, clipped at 0",
        "bands": DEFAULT_BANDS,
    }

    started = time.perf_counter()
    baselines = fit_baselines(x_train, y_train, x_test, options.seed)
    baseline_seconds = time.perf_counter() - started

    model = window_mlp(
        x_train.shape[1],
        len(targets),
        width=int(knob("width", preset["width"])),
        depth=int(knob("depth", preset["depth"])),
        input_noise=float(knob("input_noise", preset["input_noise"])),
    )
    sparsity = float(knob("sparsity", preset["sparsity"]))
    plan = FitPlan(
        epochs=int(knob("epochs", preset["epochs"])),
        batch_size=int(knob("batch_size", preset["batch_size"])),
        learning_rate=float(knob("learning_rate", preset["learning_rate"])),
        pruning=PruningPlan(target_sparsity=sparsity) if sparsity > 0 else None,
    )
    fitted = fit_pruned(
        model,
        x_train,
        y_train.astype(np.float32),
        plan,
        loss=log_target_mae(head),
        extra_callbacks=[cosine_schedule(plan.learning_rate, plan.epochs)],
        teacher=options.teacher,
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.model.predict(x, verbose=0, batch_size=1024))

    split = {
        "method": "time",
        "train_fraction": TRAIN_FRACTION,
        "train_until": _iso(table.timestamps[split_row - 1])
        if table.timestamps is not None
        else None,
        "test_from": _iso(table.timestamps[split_row]) if table.timestamps is not None else None,
        "split_row": split_row,
        "n_rows": len(table),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "windows_skipped_missing_inputs": int(data["skipped"]),
        "windows_without_reference": int((~has_target).sum()),
        "normalisation": "training part only",
        "data": {
            "source": table.report.source,
            "malformed_rows": table.report.malformed_rows,
            "empty_rows": table.report.empty_rows,
        },
    }
    evaluation = {
        "x": x_test,
        "reference": y_test,
        **baselines,
        "end_row": data["end_row"][test_rows],
        "split": np.array(json.dumps(split)),
    }
    metrics_float = score(predict, evaluation, head)
    importance = permutation_importance(predict, x_test, y_test, head, config, options.seed)
    head["explain"] = {
        "in_payload": True,
        "top": EXPLAIN_TOP,
        "per_target": _top_inputs(importance, head),
        "method": "global permutation importance on the evaluation rows (not per window)",
    }
    rng = np.random.default_rng(options.seed)
    representative = x_train[rng.permutation(len(x_train))[:REPRESENTATIVE_WINDOWS]]
    return TrainedModel(
        task="air_quality",
        name="air_quality_mlp",
        model=fitted.model,
        feature_config=config,
        head=head,
        representative=representative,
        evaluation=evaluation,
        metrics_float=metrics_float,
        sparsity=fitted.sparsity,
        provenance={
            "data": table.report.source,
            "seed": options.seed,
            "preset": options.preset,
            "fit_seconds": round(fitted.seconds, 1),
            "history": fitted.history,
            "baseline_seconds": round(baseline_seconds, 1),
            "hyperparameters": {
                "window_rows": window_rows,
                "width": int(knob("width", preset["width"])),
                "depth": int(knob("depth", preset["depth"])),
                "epochs": plan.epochs,
                "learning_rate": plan.learning_rate,
                "sparsity": sparsity,
            },
        },
        extra={
            "column_map": [list(pair) for pair in options.column_map],
            "data": table.report.to_dict(),
            "split": split,
            "baselines": {
                "linear": "sklearn LinearRegression on the same features and rows",
                "gbm": "sklearn HistGradientBoostingRegressor(loss='absolute_error'), same rows",
            },
            "explanation": {
                "method": "permutation importance: increase of MAE (target units) when one input's "
                "whole window is shuffled across evaluation rows; float model",
                "per_target": importance,
            },
        },
    )


def score(
    predict: Callable[[np.ndarray], np.ndarray],
    evaluation: dict[str, np.ndarray],
    head: dict[str, Any],
) -> dict[str, Any]:
    """Per-target MAE/R² of ``predict`` beside the baselines on the same rows, band accuracy, split.

    The headline (first key) ``mae_relative`` is the mean over targets of MAE / mean reference
    concentration: one unit-free number to minimise (``tinyfleet tune``).

    ``predict`` maps features to z-scores (Keras float or the int8 interpreter); they are decoded
    exactly as on the device (:func:`device_sim.tasks.air_quality.decode_outputs`).
    """
    x, y = evaluation["x"], evaluation["reference"]
    pred = decode_outputs(predict(x), head)
    targets: dict[str, Any] = {}
    for j, target in enumerate(head["targets"]):
        present = np.isfinite(y[:, j])
        truth, estimate = y[present, j], pred[present, j]
        entry: dict[str, Any] = {
            "mae": float(np.mean(np.abs(estimate - truth))),
            "r2": _r2(truth, estimate),
            "unit": target["unit"],
        }
        for name in ("linear", "gbm"):
            key = f"baseline_{name}"
            if key in evaluation:
                entry[f"{key}_mae"] = float(np.mean(np.abs(evaluation[key][present, j] - truth)))
        if "baseline_gbm" in evaluation:
            best = min(entry["baseline_linear_mae"], entry["baseline_gbm_mae"])
            entry["beats_best_baseline"] = bool(entry["mae"] < best)
        entry["n_test"] = int(present.sum())
        targets[target["name"]] = entry
    keys = [t["key"] for t in head["targets"]]
    bands = head.get("bands", DEFAULT_BANDS)
    banded = [keys.index(k) for k in bands["thresholds"] if k in keys]
    complete = np.all(np.isfinite(y[:, banded]), axis=1) if banded else np.zeros(len(y), bool)
    reference_band = band_indices(y[complete], keys, bands)
    estimated_band = band_indices(pred[complete], keys, bands)
    relative = [
        t["mae"] / max(float(np.mean(y[np.isfinite(y[:, j]), j])), 1e-9)
        for j, t in enumerate(targets.values())
    ]
    result: dict[str, Any] = {
        "mae_relative": float(np.mean(relative)),
        "targets": targets,
        "band_accuracy": float(np.mean(reference_band == estimated_band))
        if complete.any()
        else None,
        "band_n": int(complete.sum()),
    }
    if "split" in evaluation:
        result["split"] = json.loads(str(evaluation["split"]))
    return result


def _r2(truth: np.ndarray, estimate: np.ndarray) -> float | None:
    if len(truth) < 2:
        return None
    total = float(np.sum((truth - truth.mean()) ** 2))
    return 1.0 - float(np.sum((truth - estimate) ** 2)) / total if total > 0 else None


def evaluate(bundle: Bundle, data: Path | None, options: TrainOptions) -> dict[str, Any]:
    """The int8 bundle on a CSV (all rows) or on the simulated station after its training period.

    For the simulator the bundle's own seed is used (the same station), and the 60 days after the
    rows it was trained on are scored: a model is calibrated for one set of sensors.
    """
    from device_sim.features import feature_config_from_dict
    from device_sim.interpreter import Int8Model

    config = feature_config_from_dict(bundle.feature_config)
    if data is not None:
        table = load_csv(
            data, options.column_map or tuple(map(tuple, bundle.extra.get("column_map", ())))
        )
        first_row = 0
    else:
        seed = int(bundle.provenance.get("seed", options.seed))
        n_rows = int(bundle.extra.get("split", {}).get("n_rows", 24 * PRESETS["quick"]["sim_days"]))
        table = simulate(n_rows + 24 * 60, seed=seed)
        first_row = n_rows
    missing = [name for name in config.inputs if not table.has(name)]
    if missing:
        raise DataError(f"{table.report.source} lacks the model's input(s) {missing}")
    names = [t["name"] for t in bundle.head["targets"]]
    present = [name for name in names if table.has(name)]
    if not present:
        raise DataError(f"{table.report.source} has no reference column among {names}")
    data_ = windowed(table, config, present)
    y = np.full((len(data_["x"]), len(names)), np.nan)
    for j, name in enumerate(names):
        if name in present:
            y[:, j] = data_["y"][:, present.index(name)]
    rows = (data_["end_row"] >= first_row) & np.isfinite(y).any(axis=1)
    model = Int8Model.from_bundle(bundle)
    evaluation = {"x": data_["x"][rows], "reference": y[rows]}
    result = score(model.predict_batch, evaluation, bundle.head)
    result["data"] = {
        "source": table.report.source,
        "windows": int(rows.sum()),
        "windows_skipped_missing_inputs": int(data_["skipped"]),
        "malformed_rows": table.report.malformed_rows,
    }
    result["plot"] = str(_plot(bundle, table, data_["end_row"][rows], evaluation, model))
    return result


def _plot(bundle: Bundle, table, end_rows, evaluation, model) -> Path:
    """Estimates vs reference for the last two weeks scored, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = slice(-24 * 14, None)
    pred = decode_outputs(model.predict_batch(evaluation["x"][last]), bundle.head)
    y = evaluation["reference"][last]
    targets = bundle.head["targets"]
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 2.4 * len(targets)), sharex=True)
    axes = np.atleast_1d(axes)
    hours = end_rows[last] - end_rows[last][0] if len(end_rows) else end_rows
    for j, (axis, target) in enumerate(zip(axes, targets, strict=True)):
        axis.plot(hours, y[:, j], label="reference", color="black", linewidth=1)
        axis.plot(hours, pred[:, j], label="int8 estimate", color="tab:orange", linewidth=1)
        axis.set_ylabel(f"{target['key']} ({target['unit']})")
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("hours")
    fig.tight_layout()
    path = bundle.directory / "air_quality_evaluation.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
