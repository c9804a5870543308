"""Helpers for the vibration tests: a bundle manifest without a trained model (runtime/source tests)."""

from __future__ import annotations

from pathlib import Path

from device_sim.bundle import Bundle, QuantizedTensor
from device_sim.features.vibration import VibrationFeatureConfig


def runtime_bundle(
    directory: Path,
    *,
    threshold: float = 1.0,
    alarm_k: int = 3,
    alarm_n: int = 5,
    identity_normalization: bool = False,
) -> Bundle:
    """A vibration bundle as the device sees it (head + feature config); no model file needed.

    ``identity_normalization`` stores mean 0 / scale 1, so features are the raw front-end values.
    """
    config = VibrationFeatureConfig()
    n = config.n_features
    if identity_normalization:
        config = config.with_normalization([0.0] * n, [1.0] * n)
    tensor = QuantizedTensor(shape=(1, n), dtype="int8", scale=0.05, zero_point=0)
    return Bundle(
        directory=directory,
        task="vibration",
        name="test",
        version="0",
        input=tensor,
        output=tensor,
        feature_config=config.to_dict(),
        head={
            "anomaly_threshold": threshold,
            "target_false_alarm_rate": 0.005,
            "classes": ["normal"],
            "feature_names": config.feature_names(),
            "feature_ranges_hz": config.feature_ranges_hz(),
            "feature_orders": config.feature_orders(),
            "alarm_k": alarm_k,
            "alarm_n": alarm_n,
        },
    )
