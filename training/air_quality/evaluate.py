"""Air-quality metrics (per-target MAE beside baselines, bands, split) and ``tinyfleet evaluate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import DataError
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.uci_air_csv import load_csv
from device_sim.tasks.air_quality import DEFAULT_BANDS, band_indices, decode_outputs
from training.air_quality.data import windowed
from training.air_quality.presets import PRESETS
from training.stage import TrainOptions


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
