"""What the rest of tinyfleet needs to know about vibration condition monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from device_sim.tasks.spec import Headline, TaskSpec, fixed
from device_sim.tasks.vibration.drift import DRIFT
from device_sim.tasks.vibration.ha import ha_entities
from device_sim.tasks.vibration.head import VibrationHead

ALARM_EVENT = "vibration_alarm"  # the runtime's event type for a raised/cleared alarm


def summary(metrics: Mapping[str, Any]) -> str:
    value = metrics.get("auc")
    return f"AUC {value:.3f}" if isinstance(value, float) else f"AUC {value}"


def fleet_cells(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet view's "last prediction": score against threshold, and whether it is anomalous."""
    if "anomaly_score" not in prediction:
        return {}
    text = (
        f"score {fixed(prediction['anomaly_score'], 3)} / threshold "
        f"{fixed(prediction.get('threshold'), 3)}"
    )
    return {"prediction": text + (" — anomalous window" if prediction.get("anomaly") else "")}


def alarm_state(event: Mapping[str, Any]) -> bool | None:
    """True/False when ``event`` raises/clears the alarm the fleet view shows, else None."""
    if event.get("type") != ALARM_EVENT:
        return None
    return event.get("state") == "raised"


SPEC = TaskSpec(
    name="vibration",
    order=1,
    title="anomaly",
    head_type=VibrationHead,
    headline=Headline("auc", higher_is_better=True, int8_tolerance=0.02),
    figure=lambda metrics: ("AUC", metrics.get("auc")),
    summary=summary,
    ha_entities=ha_entities,
    fleet_cells=fleet_cells,
    alarm_state=alarm_state,
    demo_source="bearing simulator",
    drift=DRIFT,
    option_help={"--channel": "channel/variable to read"},
)
