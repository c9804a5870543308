"""What ``tinyfleet monitor`` watches on a keyword-spotting device: label priors and confidence.

Both are taken from each window's own posteriors (the payload's ``scores``, before the detector's
smoothing), so they compare like with like with the reference: the int8 model's top label and
top-class probability on the held-out clips. A microphone that was moved next to a fan, a new
accent or a language the model never heard shows as fewer confident windows and a different label
mix. The held-out clips are class-balanced; a deployment that mostly hears silence has other priors
from the first day — its ``label`` drift then says "this is not the data the model was tested on",
which is worth knowing, but the confidence check is the one to act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks.kws.head import KwsHead
from device_sim.tasks.kws.runtime import SCORE_DECIMALS
from device_sim.tasks.spec import DriftStatistics


def reference(bundle: Bundle, evaluation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Top label and top-class probability of the int8 model on the held-out clips."""
    from device_sim.interpreter import Int8Model

    labels = np.asarray(KwsHead.from_dict(bundle.head).labels)
    outputs = Int8Model.from_bundle(bundle).predict_batch(np.asarray(evaluation["x"], np.float32))
    # rounded as the payload has them, in float64 as JSON carries them (a float32 0.9961 is not the
    # payload's 0.9961, and a saturated softmax puts most windows on exactly that value)
    outputs = np.round(outputs.reshape(len(outputs), -1).astype(np.float64), SCORE_DECIMALS)
    return {"label": labels[np.argmax(outputs, axis=1)], "confidence": np.max(outputs, axis=1)}


def observe(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The same two statistics from one prediction's per-window ``scores``."""
    scores = fields.get("scores")
    if not isinstance(scores, Mapping) or not scores:
        return {}
    label = max(scores, key=lambda name: scores[name])
    return {"label": label, "confidence": scores[label]}


DRIFT = DriftStatistics(
    reference=reference,
    observe=observe,
    description="label priors (chi-square, PSI) and top-class confidence (PSI, KS)",
    categories=lambda bundle: {"label": list(KwsHead.from_dict(bundle.head).labels)},
)
