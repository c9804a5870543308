"""The scores ``tinyfleet monitor`` compares a vibration device's live anomaly scores with."""

from __future__ import annotations

import numpy as np

from device_sim.bundle import Bundle
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
