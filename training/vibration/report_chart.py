"""The vibration sections of the bundle report: ROC and score histograms of the int8 model, and
each feature's share of the anomaly score (the explanation)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks import spec_for
from device_sim.tasks.vibration import reconstruction_error
from device_sim.tasks.vibration.head import VibrationHead
from training.report_charts import (
    Importance,
    TaskChart,
    label_array,
    roc_and_histogram,
    roc_points,
)

REPORT_TITLE = "ROC and anomaly scores (int8)"


def _head(bundle: Bundle) -> VibrationHead:
    return spec_for(bundle.task).head(bundle)


def report_chart(
    bundle: Bundle, evaluation: Mapping[str, np.ndarray], outputs: np.ndarray
) -> TaskChart:
    """ROC of the int8 anomaly score on the held-out windows, and what the bundle threshold does."""
    head = _head(bundle)
    x = np.asarray(evaluation["x"], dtype=np.float32).reshape(len(outputs), -1)
    scores = reconstruction_error(x, outputs.reshape(len(outputs), -1), head.error_scale or None)
    # class_index: 0 = normal, k > 0 = fault class k (training/vibration/data.py)
    flags = label_array(evaluation, len(outputs), ("class_index", "anomaly", "y"))
    if flags is None:
        return TaskChart(notes=("evaluation.npz has no anomaly labels ('class_index')",))
    flags = flags > 0
    if flags.all() or not flags.any():
        return TaskChart(notes=("the evaluation set holds only one class: no ROC",))
    fpr, tpr = roc_points(scores, flags)
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    threshold = head.anomaly_threshold
    chart = roc_and_histogram(scores, flags, threshold, auc)
    note = f"int8 AUC recomputed here: {auc:.4f} on {len(scores)} windows"
    false_alarms = float(np.mean(scores[~flags] > threshold))
    detected = float(np.mean(scores[flags] > threshold))
    note += f"; at the bundle threshold {threshold:.4g}: {detected:.1%} of anomalous windows "
    note += f"detected, {false_alarms:.1%} false alarms per normal window"
    return TaskChart(images=((chart, "ROC and score histograms"),), notes=(note,))


def report_importance(
    bundle: Bundle, evaluation: Mapping[str, np.ndarray], outputs: np.ndarray
) -> Importance | None:
    """Each feature's share of the int8 reconstruction error on anomalous windows.

    This is the device's per-window explanation (``TaskRuntime.explain``) averaged over the
    held-out anomalous windows: which bands carry the faults the model flags.
    """
    head = _head(bundle)
    names = head.feature_names
    classes = evaluation.get("class_index")
    if not names or classes is None or not np.any(classes > 0):
        return None
    x = np.asarray(evaluation["x"], np.float64).reshape(len(outputs), -1)
    scale = np.asarray(head.error_scale or 1.0, dtype=np.float64)
    errors = ((x - outputs.reshape(len(x), -1)) / scale) ** 2
    anomalous = errors[classes > 0]
    shares = anomalous / np.maximum(anomalous.sum(axis=1, keepdims=True), 1e-12)
    title = "share of the int8 anomaly score per feature, mean over anomalous held-out windows"
    return title, list(names), [float(v) for v in shares.mean(axis=0)]
