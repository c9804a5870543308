"""The table, its inputs, windows with complete inputs, the time split and the targets' encoding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from device_sim.errors import DataError
from device_sim.features.air_quality import (
    FEATURES_PER_TRANSFORM,
    AirQualityWindowConfig,
    sliding_windows,
)
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.uci_air_csv import SENSOR_COLUMNS, AirQualityTable, load_csv
from training.air_quality.baselines import baseline_features
from training.air_quality.presets import (
    INPUT_TRANSFORMS,
    MIN_TARGET_VALUES,
    PRESETS,
    TARGETS,
    TRAIN_FRACTION,
)
from training.stage import TrainOptions


def load_table(options: TrainOptions, *, days: int | None = None) -> AirQualityTable:
    """The dataset: ``options.data`` (UCI/generic CSV) or ``days`` of the seeded simulator."""
    if options.data is not None:
        return load_csv(options.data, options.column_map)
    n_days = days or options.knob("sim_days", PRESETS[options.preset]["sim_days"])
    return simulate(24 * int(n_days), seed=options.seed)


def choose_inputs(
    table: AirQualityTable, drop: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Inputs the table has (in canonical order, minus ``drop``) and their transforms; needs ≥ 1
    MOX sensor."""
    inputs = tuple(name for name in INPUT_TRANSFORMS if table.has(name) and name not in drop)
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


@dataclass
class TimeSplit:
    """Training and evaluation windows on either side of ``split_row`` (rows of the table)."""

    targets: list[str]  # the modelled targets: enough references on both sides
    x_train: np.ndarray
    y_train: np.ndarray  # NaN where a reference is missing
    x_test: np.ndarray
    y_test: np.ndarray
    train_end_rows: np.ndarray  # the table row each window ends at
    test_end_rows: np.ndarray
    skipped: int  # windows with a missing input
    without_reference: int  # complete windows with no reference for any modelled target


def time_split(
    table: AirQualityTable, config: AirQualityWindowConfig, split_row: int, test_end: int
) -> TimeSplit:
    """Windows ending before ``split_row`` train; those ending in ``[split_row, test_end)`` where
    every baseline has its inputs evaluate (so all are scored on identical rows)."""
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
    return TimeSplit(
        targets=targets,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        train_end_rows=data["end_row"][train_rows],
        test_end_rows=data["end_row"][test_rows],
        skipped=int(data["skipped"]),
        without_reference=int((~has_target).sum()),
    )


def describe_split(table: AirQualityTable, split_row: int, split: TimeSplit) -> dict[str, Any]:
    """The split as recorded in the bundle (``extra["split"]``) and reported with the metrics."""
    return {
        "method": "time",
        "train_fraction": TRAIN_FRACTION,
        "train_until": _iso(table.timestamps[split_row - 1])
        if table.timestamps is not None
        else None,
        "test_from": _iso(table.timestamps[split_row]) if table.timestamps is not None else None,
        "split_row": split_row,
        "n_rows": len(table),
        "n_train": int(len(split.x_train)),
        "n_test": int(len(split.x_test)),
        "windows_skipped_missing_inputs": split.skipped,
        "windows_without_reference": split.without_reference,
        "normalisation": "training part only",
        "data": {
            "source": table.report.source,
            "malformed_rows": table.report.malformed_rows,
            "empty_rows": table.report.empty_rows,
        },
    }


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


def log_z(values: np.ndarray, target: dict[str, Any]) -> np.ndarray:
    """Concentrations → the head's log-space z (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        logs = np.log(np.maximum(values, 0.0) + target["offset"])
    return (logs - target["log_mean"]) / target["log_std"]


def input_columns(config: AirQualityWindowConfig) -> list[list[int]]:
    """Per input, its feature columns over all window rows."""
    columns, start = [], 0
    for transform in config.transforms:
        width = FEATURES_PER_TRANSFORM[transform]
        columns.append(
            [
                row * config.features_per_row + start + k
                for row in range(config.window_rows)
                for k in range(width)
            ]
        )
        start += width
    return columns
