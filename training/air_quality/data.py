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
from device_sim.tasks.air_quality import (
    DEFAULT_BANDS,
    OUTPUT_CLIP,
    CurvePrior,
    OutputDecoder,
    band_indices,
    decode_outputs,
    hinge_basis,
)
from training.air_quality_baselines import baseline_features, fit_baselines
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
        "prior_knots": 6,
        "prior_inputs": 1,
        "clip_weather": True,
        "gbm_distill": 2.0,
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
        "prior_knots": 6,
        "prior_inputs": 1,
        "clip_weather": True,
        "gbm_distill": 2.0,
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
    "prior_knots": [-1, 0, 3, 6, 10],
    "prior_inputs": [1, 2, 8],
    "clip_weather": [False, True],
    "gbm_distill": [0.0, 1.0, 3.0],
    "distill_swap": [0.1, 0.3, 0.5],
}
HEADLINE_METRIC = "mae_relative"
TRAIN_FRACTION = 0.75
MIN_TARGET_VALUES = 50  # a target needs this many present values in each part to be modelled
REPRESENTATIVE_WINDOWS = 300
EXPLAIN_TOP = 2
DISTILL_SWAP = 0.3  # probability that a sampled window takes an input from another window


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


def current_row_inputs(config: AirQualityWindowConfig) -> tuple[list[int], list[str]]:
    """Feature indices (and input names) of the newest row's ``log``/``linear`` inputs."""
    indices, names, start = [], [], (config.window_rows - 1) * config.features_per_row
    for name, transform in zip(config.inputs, config.transforms, strict=True):
        if transform in ("log", "linear"):
            indices.append(start)
            names.append(name)
        start += FEATURES_PER_TRANSFORM[transform]
    return indices, names


def fit_curve_prior(
    x: np.ndarray,
    y: np.ndarray,
    head: dict[str, Any],
    config: AirQualityWindowConfig,
    n_knots: int,
    inputs_per_target: int = 1,
) -> CurvePrior:
    """Per target, least-squares piecewise-linear curves of its best ``inputs_per_target`` inputs.

    Inputs are chosen greedily (lowest training residual first) among the newest row's features;
    knots sit at training quantiles. Fitted in log-concentration z units on the present references
    of the training rows only; a tiny ridge keeps collinear curves finite. ``n_knots = 0`` is a
    plain linear calibration. One sensor's curve per gas, not all of them: with every input the
    curves fit summer's cross-correlations and extrapolate badly a month later (forward-chaining
    CO, June: 0.58 mg/m³ prior alone vs 0.29 for gradient boosting). ``residual_scale`` is each
    target's residual spread (std in z), so the network's outputs are of order 1 for every target.
    """
    indices, _ = current_row_inputs(config)
    quantiles = np.linspace(0.0, 1.0, n_knots + 2)[1:-1]
    knots = tuple(tuple(float(k) for k in np.quantile(x[:, i], quantiles)) for i in indices)
    per_input = [hinge_basis(x, [i], [k]) for i, k in zip(indices, knots, strict=True)]
    z = np.column_stack([log_z(y[:, j], t) for j, t in enumerate(head["targets"])])
    slopes, hinges, biases, residual = [], [], [], []
    for j in range(z.shape[1]):
        present = np.isfinite(z[:, j])
        columns = [basis[present] for basis in per_input]
        chosen: list[int] = []
        for _ in range(min(inputs_per_target, len(indices))):
            best = min(
                (c for c in range(len(indices)) if c not in chosen),
                key=lambda c: _ridge_curves([columns[k] for k in chosen + [c]], z[present, j])[1],
            )
            chosen.append(best)
        w, spread = _ridge_curves([columns[k] for k in chosen], z[present, j])
        residual.append(max(spread, 1e-3))
        biases.append(float(w[-1]))
        slope = [0.0] * len(indices)
        hinge = [tuple(0.0 for _ in k) for k in knots]
        at = 0
        for c in chosen:
            slope[c] = float(w[at])
            hinge[c] = tuple(float(v) for v in w[at + 1 : at + 1 + len(knots[c])])
            at += 1 + len(knots[c])
        slopes.append(tuple(slope))
        hinges.append(tuple(hinge))
    return CurvePrior(
        feature_index=tuple(indices),
        knots=knots,
        bias=tuple(biases),
        slope=tuple(slopes),
        hinge=tuple(hinges),
        residual_scale=tuple(residual),
    )


def _ridge_curves(bases: list[np.ndarray], z: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights (bases side by side, then a bias) and residual std of a tiny-ridge fit to ``z``."""
    a = np.concatenate(bases + [np.ones((len(z), 1))], axis=1)
    ridge = 1e-3 * len(a) * np.eye(a.shape[1])
    ridge[-1, -1] = 0.0  # the bias is not shrunk
    w = np.linalg.solve(a.T @ a + ridge, a.T @ z)
    return w, float(np.std(z - a @ w))


def log_z(values: np.ndarray, target: dict[str, Any]) -> np.ndarray:
    """Concentrations → the head's log-space z (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        logs = np.log(np.maximum(values, 0.0) + target["offset"])
    return (logs - target["log_mean"]) / target["log_std"]


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
        increase = _per_target_mae(decode_outputs(predict(shuffled), head, shuffled), y) - reference
        for target, delta in zip(head["targets"], increase, strict=True):
            result[target["name"]][name] = round(float(delta), 4)
    return result


def _top_inputs(importance: dict[str, dict[str, float]], head: dict[str, Any]) -> dict[str, list]:
    top = {}
    for target in head["targets"]:
        ranked = sorted(importance[target["name"]].items(), key=lambda kv: -kv[1])
        top[target["key"]] = [name for name, _ in ranked[:EXPLAIN_TOP]]
    return top


def _with_teacher_windows(
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
    from training.air_quality_distill import sample_windows, teacher_concentrations

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


def train(
    options: TrainOptions,
    *,
    table: AirQualityTable | None = None,
    split_rows: tuple[int, int] | None = None,
    baseline_cache: Path | None = None,
) -> TrainedModel:
    """Dataset → time split → windows → baselines → curve prior + pruned dense net → float metrics.

    ``split_rows = (train_end, test_end)`` trains on rows before ``train_end`` and evaluates the
    windows ending in ``[train_end, test_end)`` (the forward-chaining protocol of
    :mod:`training.air_quality_protocol`); by default the first ``TRAIN_FRACTION`` of the rows
    train and the rest evaluate. ``table`` skips loading ``options.data`` again;
    ``baseline_cache`` is a folder where the baselines' predictions are kept between runs.
    """
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import seed_everything
    from training.pruning import PruningPlan

    preset = PRESETS[options.preset]
    knob = options.knob
    seed_everything(options.seed)
    table = table if table is not None else load_table(options)
    inputs, transforms = choose_inputs(table)
    split_row, test_end = split_rows or (int(len(table) * TRAIN_FRACTION), len(table))
    window_rows = int(knob("window_rows", preset["window_rows"]))
    config = AirQualityWindowConfig.fitted(
        inputs,
        transforms,
        table.matrix(inputs)[:split_row],
        window_rows=window_rows,
        row_seconds=table.row_seconds,
        clip_linear=bool(knob("clip_weather", preset["clip_weather"])),
    )
    candidates = [name for name in TARGETS if table.has(name)]
    data = windowed(table, config, candidates)
    train_part = data["end_row"] < split_row
    # evaluated rows: also where every baseline has its inputs, so all are scored on identical rows
    baseline_ok = np.all(
        [np.isfinite(baseline_features(table, kind)).all(axis=1) for kind in ("hour", "lagged")],
        axis=0,
    )
    test_part = (
        (data["end_row"] >= split_row) & (data["end_row"] < test_end) & baseline_ok[data["end_row"]]
    )
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
        "output": "per target: z = prior(features) + residual_scale * output; value = "
        "exp(z * log_std + log_mean) - offset, clipped at 0",
        "bands": DEFAULT_BANDS,
    }
    n_knots = int(knob("prior_knots", preset["prior_knots"]))
    if n_knots >= 0:
        head["prior"] = fit_curve_prior(
            x_train,
            y_train,
            head,
            config,
            n_knots,
            inputs_per_target=int(knob("prior_inputs", preset["prior_inputs"])),
        ).to_dict()
        prior_z = CurvePrior.from_dict(head["prior"])(x_train)
    else:  # no prior: the network alone, as before issue #14
        prior_z = np.zeros_like(y_train)

    started = time.perf_counter()
    train_end_rows = data["end_row"][train_rows]
    baselines = fit_baselines(
        table, targets, train_end_rows, data["end_row"][test_rows], options.seed, baseline_cache
    )
    baseline_seconds = time.perf_counter() - started

    x_fit = x_train
    y_fit = np.concatenate([y_train, prior_z], axis=1)
    distill_ratio = float(knob("gbm_distill", preset["gbm_distill"]))
    if distill_ratio > 0:
        x_fit, y_fit = _with_teacher_windows(
            x_train,
            y_train,
            y_fit,
            head,
            config,
            distill_ratio,
            options.seed,
            swap=float(knob("distill_swap", DISTILL_SWAP)),
        )

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
        x_fit,
        y_fit.astype(np.float32),
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
        **{f"baseline_{name}": pred for name, pred in baselines.predictions.items()},
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
                "models": "sklearn defaults: LinearRegression, GradientBoostingRegressor, "
                "HistGradientBoostingRegressor (random_state = seed)",
                "features": "hour: the hour's raw MOX/T/RH/AH readings; lagged: the same at t, "
                "t-1 h, t-2 h plus hour of day; fitted on the training rows, scored on the "
                "model's evaluation rows",
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
    outputs = predict(x)
    pred = decode_outputs(outputs, head, x)
    # the float curve prior alone (network output 0): what the int8 network adds on top of it
    prior_only = decode_outputs(np.zeros_like(outputs), head, x) if head.get("prior") else None
    baseline_names = sorted(k[len("baseline_") :] for k in evaluation if k.startswith("baseline_"))
    targets: dict[str, Any] = {}
    for j, target in enumerate(head["targets"]):
        present = np.isfinite(y[:, j])
        truth, estimate = y[present, j], pred[present, j]
        entry: dict[str, Any] = {
            "mae": float(np.mean(np.abs(estimate - truth))),
            "r2": _r2(truth, estimate),
            "unit": target["unit"],
        }
        if prior_only is not None:
            entry["prior_only_mae"] = float(np.mean(np.abs(prior_only[present, j] - truth)))
        baselines = {
            name: float(np.nanmean(np.abs(evaluation[f"baseline_{name}"][present, j] - truth)))
            for name in baseline_names
        }
        if baselines:
            entry["baselines_mae"] = baselines
            # best of each family (either feature set; both gradient-boosting flavours)
            for family in ("linear", "gbm"):
                maes = [v for k, v in baselines.items() if family in k]
                if maes:
                    entry[f"baseline_{family}_mae"] = min(maes)
            best = min(baselines, key=baselines.get)
            entry["best_baseline"] = best
            entry["beats_best_baseline"] = bool(entry["mae"] < baselines[best])
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
    x = evaluation["x"][last]
    pred = decode_outputs(model.predict_batch(x), bundle.head, x)
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
