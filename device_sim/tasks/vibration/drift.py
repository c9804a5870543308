"""What ``tinyfleet monitor`` watches on a vibration device: its anomaly-score distribution.

The reference is the int8 model's scores on the held-out *normal* windows: a sensor whose gain
changed, or a machine running at a speed it never ran at in training, moves them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks.spec import DriftStatistics
from device_sim.tasks.vibration.head import VibrationHead
from device_sim.tasks.vibration.runtime import reconstruction_error


def healthy_scores(bundle: Bundle, evaluation: dict[str, np.ndarray]) -> np.ndarray:
    """Anomaly scores of the bundle's held-out *normal* windows, scored by its int8 model."""
    from device_sim.interpreter import Int8Model

    x = np.asarray(evaluation["x"], dtype=np.float32)
    classes = evaluation.get("class_index")
    if classes is not None:
        x = x[np.asarray(classes) == 0]
    outputs = Int8Model.from_bundle(bundle).predict_batch(x)
    head = VibrationHead.from_dict(bundle.head)
    return reconstruction_error(
        x.reshape(len(x), -1), outputs.reshape(len(x), -1), head.error_scale or None
    )


def observe(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"anomaly_score": fields.get("anomaly_score")}


DRIFT = DriftStatistics(
    reference=lambda bundle, evaluation: {"anomaly_score": healthy_scores(bundle, evaluation)},
    observe=observe,
    description="anomaly-score distribution of normal windows (PSI, KS)",
)
