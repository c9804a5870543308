"""The drift statistics without a broker: ties, schema-1 references, labels, air-quality residuals."""

from __future__ import annotations

import numpy as np

from device_sim.monitoring import categorical_reference, continuous_reference
from device_sim.mqtt.payload import Prediction
from ops.monitor import HealthMonitor, psi


def _prediction(task: str, seq: int, fields: dict, device: str = "d1") -> Prediction:
    return Prediction(1, device, task, {}, "", 0, seq, 0, 0, True, fields)


def _reference(statistics: dict) -> dict:
    return {
        "schema": 2,
        "source": "test",
        "invalid_rate": 0.0,
        "windows": 0,
        "statistics": statistics,
    }


def test_saturated_scores_do_not_look_like_drift_against_themselves():
    rng = np.random.default_rng(0)
    # an int8 softmax saturates: most windows at the same top probability
    values = np.where(rng.random(1000) < 0.7, 0.9961, rng.uniform(0.4, 0.99, 1000))
    reference = continuous_reference(values)
    assert len(reference["decile_edges"]) < 9  # tied deciles merged
    assert psi(reference, values[:200]) < 0.1
    assert psi(reference, rng.uniform(0.4, 0.99, 200)) > 0.25


def test_a_schema_1_vibration_reference_is_still_read():
    rng = np.random.default_rng(1)
    healthy = rng.gamma(4.0, 0.1, 500)
    old = {
        "field": "anomaly_score",
        "decile_edges": [float(v) for v in np.quantile(healthy, np.linspace(0.1, 0.9, 9))],
        "sample": sorted(float(v) for v in healthy),
        "invalid_rate": 0.0,
        "windows": 500,
    }
    monitor = HealthMonitor({"vibration": old}, window=100)
    events = [
        monitor.observe(_prediction("vibration", i, {"anomaly_score": float(v) * 3}))
        for i, v in enumerate(rng.gamma(4.0, 0.1, 100))
    ]
    drift = [e for e in events if e is not None]
    assert drift and drift[0].status == "drift" and "anomaly_score" in drift[0].reasons[0]


def test_kws_label_priors_drift_by_chi_square():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    rng = np.random.default_rng(2)
    reference = _reference(
        {
            "label": categorical_reference(rng.choice(labels, 400), labels),
            "confidence": continuous_reference(rng.uniform(0.6, 1.0, 400)),
        }
    )
    monitor = HealthMonitor({"kws": reference}, window=100)

    def fields(top: str) -> dict:
        confidence = float(rng.uniform(0.6, 1.0))
        return {"scores": {name: confidence if name == top else 0.01 for name in labels}}

    balanced = [monitor.observe(_prediction("kws", i, fields(labels[i % 4]))) for i in range(100)]
    assert all(e is None for e in balanced), [e for e in balanced if e]
    monitor = HealthMonitor({"kws": reference}, window=100)
    events = [monitor.observe(_prediction("kws", i, fields("yes"))) for i in range(100)]
    event = next(e for e in events if e is not None)
    label = event.checks["statistics"]["label"]
    assert label["test"] == "chi2" and label["top"] == "yes" and label["top_share"] == 1.0
    assert any(r.startswith("label distribution moved") for r in event.reasons)


def test_air_quality_residuals_count_only_when_a_prediction_carries_a_reference():
    rng = np.random.default_rng(3)
    estimates = rng.lognormal(0.0, 0.5, 600)
    reference = _reference(
        {
            "CO_estimate": continuous_reference(estimates),
            "CO_residual": continuous_reference(rng.normal(0.0, 0.2, 600)),
        }
    )
    monitor = HealthMonitor({"air_quality": reference}, window=100, min_windows=100)
    event = None
    for i, value in enumerate(rng.lognormal(0.0, 0.5, 100)):
        fields = {"estimates": {"CO": {"value": float(value), "unit": "mg/m³"}}}
        event = monitor.observe(_prediction("air_quality", i, fields)) or event
    assert event is None
    assert set(monitor.tracks[("d1", "air_quality")].values) == {"CO_estimate"}
    # a co-located analyser now says the node reads 0.8 mg/m³ high: same estimates, residuals moved
    events = []
    for i, value in enumerate(rng.lognormal(0.0, 0.5, 100)):
        co = {"value": float(value), "unit": "mg/m³", "reference": float(value) - 0.8}
        fields = {"estimates": {"CO": co}}
        events.append(monitor.observe(_prediction("air_quality", i, fields, device="d2")))
    event = next(e for e in events if e is not None)
    assert [r.split()[0] for r in event.reasons] == ["CO_residual"], event.reasons
    assert event.checks["statistics"]["CO_residual"]["median"] > 0.6
