"""What the rest of tinyfleet needs to know about keyword spotting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from device_sim.tasks.kws.drift import DRIFT
from device_sim.tasks.kws.ha import ha_entities
from device_sim.tasks.kws.head import KwsHead
from device_sim.tasks.spec import Headline, TaskSpec


def summary(metrics: Mapping[str, Any]) -> str:
    return f"accuracy {_fmt(metrics.get('accuracy'))}"


def fleet_cells(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet view's "last prediction": the smoothed top label and its score."""
    if "label" not in prediction:
        return {}
    score = prediction.get("score")
    score_text = f"{score:.2f}" if isinstance(score, (int, float)) else str(score)
    return {"prediction": f"{prediction['label']} ({score_text})"}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


SPEC = TaskSpec(
    name="kws",
    order=0,
    title="keyword spotting",
    head_type=KwsHead,
    headline=Headline("accuracy", higher_is_better=True, int8_tolerance=0.02),
    figure=lambda metrics: ("accuracy", metrics.get("accuracy")),
    summary=summary,
    ha_entities=ha_entities,
    fleet_cells=fleet_cells,
    demo_source="synthesized speech",
    option_help={
        "--synth": "add the synthesized-speech corpus to the real clips of --data",
        "--all-speakers": "train the final model on every speaker of --data (no held-out "
        "speakers, so the bundle's accuracy is on trained-on clips; estimate with "
        "benchmarks/kws_kfold.py)",
        "--mic": "listen on the default ALSA microphone via arecord (same as --source mic)",
    },
    live_microphone=True,
    drift=DRIFT,
)
