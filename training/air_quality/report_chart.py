"""The air-quality section of the bundle report: per-target error against the better baseline, and
the int8 model's estimates against the reference concentrations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks import spec_for
from device_sim.tasks.air_quality import decode_outputs
from device_sim.tasks.air_quality.head import AirQualityHead
from training.report_charts import TaskChart, label_array, predicted_vs_reference, target_errors

REPORT_TITLE = "Per-target error and predicted vs reference (int8)"


def report_chart(
    bundle: Bundle, evaluation: Mapping[str, np.ndarray], outputs: np.ndarray
) -> TaskChart:
    """Decoded int8 estimates vs the reference per target, with the MAE recomputed here."""
    head: AirQualityHead = spec_for(bundle.task).head(bundle)
    predicted = decode_outputs(outputs, head, evaluation.get("x"))
    reference = label_array(evaluation, len(outputs), ("reference", "y_true", "y"))
    if reference is None:
        return TaskChart(
            notes=("evaluation.npz has no reference concentrations ('reference' or 'y')",)
        )
    reference = np.asarray(reference, dtype=np.float64).reshape(predicted.shape)
    if "reference" not in evaluation:
        reference = decode_outputs(reference, head, evaluation.get("x"))  # z-scores
    names = [t.get("key", f"target {i}") for i, t in enumerate(head.targets)]
    units = [t.get("unit", "") for t in head.targets]
    mae = np.nanmean(np.abs(predicted - reference), axis=0)
    rows = [(n, u, float(m)) for n, u, m in zip(names, units, mae, strict=False)]
    images = (
        *_target_error_chart(bundle),
        (predicted_vs_reference(reference, predicted, names, units), "predicted vs reference"),
    )
    return TaskChart(images=images, table=(rows, ("target", "unit", "int8 MAE recomputed here")))


def _target_error_chart(bundle: Bundle) -> tuple[tuple[bytes, str], ...]:
    """Float and int8 MAE per target against the better of the two baselines (none: no chart)."""
    float_targets = bundle.metrics.get("float", {}).get("targets") or {}
    int8_targets = bundle.metrics.get("int8", {}).get("targets") or {}
    names = [n for n in int8_targets if n in float_targets and "mae" in int8_targets[n]]
    if not names:
        return ()
    baselines = []
    for name in names:
        values = [int8_targets[name].get(k) for k in ("baseline_linear_mae", "baseline_gbm_mae")]
        values = [v for v in values if isinstance(v, (int, float))]
        baselines.append(min(values) if values else None)
    chart = target_errors(
        [n.split("(")[0] for n in names],
        [float_targets[n]["mae"] for n in names],
        [int8_targets[n]["mae"] for n in names],
        baselines,
    )
    return ((chart, "per-target error against the better baseline"),)
