"""The KWS section of the bundle report: the int8 model's confusion matrix on the held-out clips."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks import spec_for
from device_sim.tasks.kws.head import KwsHead
from training.report_charts import TaskChart, confusion_matrix, label_array

REPORT_TITLE = "Confusion matrix (int8)"


def report_chart(
    bundle: Bundle, evaluation: Mapping[str, np.ndarray], outputs: np.ndarray
) -> TaskChart:
    """Confusion matrix of the int8 ``outputs`` against the integer labels ``y`` of ``evaluation``."""
    head: KwsHead = spec_for(bundle.task).head(bundle)
    labels = list(head.labels)
    reference = label_array(evaluation, len(outputs), ("y", "labels", "label"))
    if reference is None:
        return TaskChart(
            notes=("evaluation.npz has no integer labels ('y') or the head no 'labels'",)
        )
    predicted = np.argmax(outputs, axis=-1)
    n = len(labels)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (reference.astype(np.int64), predicted), 1)
    accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    return TaskChart(
        images=((confusion_matrix(matrix, labels), "confusion matrix"),),
        notes=(
            f"int8 accuracy recomputed here from evaluation.npz: {accuracy:.4f} on {matrix.sum()} "
            "windows (the metrics table holds the value the quantize stage recorded)",
        ),
    )
