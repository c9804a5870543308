"""What the rest of tinyfleet needs to know about air quality from gas sensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from device_sim.tasks.air_quality.calibration import calibrate_csv
from device_sim.tasks.air_quality.drift import DRIFT
from device_sim.tasks.air_quality.ha import ha_entities
from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.spec import Headline, TaskSpec, fixed


def worst_target_mae(metrics: Mapping[str, Any]) -> float | None:
    """The value the int8 tolerance applies to: the worst target's MAE (relative loss later)."""
    targets = metrics.get("targets") or {}
    values = [t.get("mae") for t in targets.values() if isinstance(t, Mapping)]
    values = [float(v) for v in values if v is not None]
    return max(values) if values else None


def per_target_loss(
    metrics_float: Mapping[str, Any], metrics_int8: Mapping[str, Any]
) -> dict[str, float]:
    """Per target, how much int8 grows the MAE relative to float (the verdict is the worst)."""
    per_target = {}
    for name, entry in (metrics_float.get("targets") or {}).items():
        int8_entry = (metrics_int8.get("targets") or {}).get(name, {})
        if entry.get("mae") and int8_entry.get("mae") is not None:
            per_target[name] = (int8_entry["mae"] - entry["mae"]) / entry["mae"]
    return per_target


def figure(metrics: Mapping[str, Any]) -> tuple[str, Any]:
    """``("MAE CO/NO2/C6H6", "0.41/22.3/0.9")``: every target's MAE, in the targets' units."""
    if "targets" not in metrics:
        return "MAE", None
    maes = {name.split("(")[0]: round(float(t["mae"]), 3) for name, t in metrics["targets"].items()}
    return "MAE " + "/".join(maes), "/".join(str(v) for v in maes.values())


def summary(metrics: Mapping[str, Any]) -> str:
    label, value = figure(metrics)
    return f"{label} {value}"


def fleet_cells(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet view's "last prediction": each estimate with its unit, and the band."""
    if not isinstance(prediction.get("estimates"), dict):
        return {}
    parts = [
        f"{key} {fixed(e.get('value'), 2)} {e.get('unit', '')}".strip()
        for key, e in prediction["estimates"].items()
        if isinstance(e, dict)
    ]
    band = prediction.get("band")
    return {"prediction": ", ".join(parts) + (f" — band {band}" if band else "")}


SPEC = TaskSpec(
    name="air_quality",
    order=2,
    title="gas-sensor calibration",
    head_type=AirQualityHead,
    headline=Headline("mae", higher_is_better=False, int8_tolerance=0.05, relative=True),
    headline_value=worst_target_mae,
    per_part_loss=per_target_loss,
    part_name="target",
    figure=figure,
    summary=summary,
    ha_entities=ha_entities,
    fleet_cells=fleet_cells,
    demo_source="gas-sensor simulator",
    calibrate=calibrate_csv,
    drift=DRIFT,
    option_help={"--column": "map a generic CSV column onto a UCI column name"},
)
