"""What ``tinyfleet monitor`` watches on an air-quality node: its estimates, and residuals when it can.

* ``<target>_estimate`` — the distribution of each target's estimate against the int8 model's
  estimates on the held-out hours (PSI, KS). An ageing or poisoned MOX sensor, a node moved
  indoors or a new season moves it. Hourly concentrations follow days, weeks and seasons, so a
  window of a few days differs from a held-out year more than a vibration window does: read a
  drift here as "look at this node", and use ``tinyfleet calibrate`` with reference hours to fix it.
* ``<target>_residual`` — estimate minus the co-located reference analyser's value, against the
  held-out residuals (PSI, KS). The residuals are watched only for predictions whose estimate
  carries a ``reference`` value (``"estimates": {"CO": {"value": 1.2, "unit": "mg/m³",
  "reference": 1.0}}``). No tinyfleet device publishes one today (the simulated and file sources
  keep their reference columns to themselves); a gateway that joins a station's readings in can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.air_quality.runtime import VALUE_DECIMALS, OutputDecoder
from device_sim.tasks.spec import DriftStatistics

# Two weeks of hourly estimates: a shorter window mostly measures this week's weather and traffic
# against the held-out months (on the simulator, one week of a healthy node reached PSI 0.30 on
# NO2, two weeks stayed below 0.17), so no verdict is given before two weeks either.
WINDOW_HOURS = 24 * 14


def reference(bundle: Bundle, evaluation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per target, the int8 model's held-out estimates and (where the hour has a reference value)
    their residuals, decoded exactly as the device decodes them."""
    from device_sim.interpreter import Int8Model

    head = AirQualityHead.from_dict(bundle.head)
    x = np.asarray(evaluation["x"], dtype=np.float32)
    outputs = Int8Model.from_bundle(bundle).predict_batch(x).reshape(len(x), -1)
    estimates = OutputDecoder.from_head(head)(outputs, x.reshape(len(x), -1))
    estimates = np.round(estimates.astype(np.float64), VALUE_DECIMALS)  # as the payload has them
    truth = evaluation.get("reference")
    statistics: dict[str, np.ndarray] = {}
    for j, target in enumerate(head.targets):
        statistics[f"{target['key']}_estimate"] = estimates[:, j]
        if truth is not None:
            statistics[f"{target['key']}_residual"] = estimates[:, j] - np.asarray(truth)[:, j]
    return statistics


def observe(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Each estimate, and its residual when the estimate carries a ``reference`` value."""
    estimates = fields.get("estimates")
    if not isinstance(estimates, Mapping):
        return {}
    values: dict[str, Any] = {}
    for key, estimate in estimates.items():
        if not isinstance(estimate, Mapping):
            continue
        value, truth = estimate.get("value"), estimate.get("reference")
        values[f"{key}_estimate"] = value
        if isinstance(value, (int, float)) and isinstance(truth, (int, float)):
            values[f"{key}_residual"] = value - truth
    return values


DRIFT = DriftStatistics(
    reference=reference,
    observe=observe,
    description="per-target estimate distribution (PSI, KS); residuals against co-located "
    "reference values when a prediction carries them",
    window=WINDOW_HOURS,
    min_windows=WINDOW_HOURS,
)
