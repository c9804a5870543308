"""The vibration bundle's head: what the anomaly score means and how far to trust its threshold.

Stored as JSON in ``bundle.json["head"]``; :meth:`VibrationHead.from_dict` is the one place that
reads it, so a missing or misspelt field is a :class:`BundleError` that says to rebuild.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from device_sim.errors import BundleError


@dataclass(frozen=True)
class VibrationHead:
    """Threshold, score definition, explanation tables and the false-alarm calibration record.

    Rates are per window (a window is ``window_samples`` at the bundle's hop). ``error_scale`` is
    each standardised feature's RMS reconstruction error on held-out normal windows.
    ``expected_false_alarm_rate`` and ``false_alarm_rate_upper_95``
    come from :mod:`training.vibration.threshold` (None in bundles built before it).
    """

    anomaly_threshold: float
    target_false_alarm_rate: float = 0.005
    feature_names: tuple[str, ...] = ()
    feature_ranges_hz: tuple[tuple[float, float], ...] = ()
    feature_orders: tuple[float | None, ...] = ()
    error_scale: tuple[float, ...] = ()
    classes: tuple[str, ...] = ("normal",)
    alarm_k: int = 5
    alarm_n: int = 8
    score: str = "mean(((features - output) / error_scale)^2) over the standardised features"
    expected_false_alarm_rate: float | None = None
    false_alarm_rate_upper_95: float | None = None
    calibration_windows: int | None = None
    effective_windows: float | None = None
    exceedances: int | None = None
    method: str = "empirical"
    float_anomaly_threshold: float | None = None
    baseline_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.anomaly_threshold > 0:
            raise BundleError(f"anomaly_threshold must be > 0, got {self.anomaly_threshold}")
        if not 1 <= self.alarm_k <= self.alarm_n:
            raise BundleError(
                f"alarm_k={self.alarm_k} must be between 1 and alarm_n={self.alarm_n}"
            )
        n = len(self.feature_names)
        if len(self.feature_ranges_hz) != n or (self.error_scale and len(self.error_scale) != n):
            raise BundleError(
                f"the vibration head describes {n} features but has {len(self.feature_ranges_hz)} "
                f"ranges and {len(self.error_scale)} error scales: rebuild the bundle"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (tuples as lists), as stored in ``bundle.json``."""
        return {key: _as_lists(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VibrationHead:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise BundleError(
                f"the vibration head has unknown field(s) {sorted(unknown)}: the bundle was "
                "written by a newer tinyfleet"
            )
        values = dict(data)
        for key in ("feature_names", "feature_orders", "error_scale", "classes"):
            if key in values and values[key] is not None:
                values[key] = tuple(values[key])
        if "feature_ranges_hz" in values:
            values["feature_ranges_hz"] = tuple(
                (float(lo), float(hi)) for lo, hi in values["feature_ranges_hz"]
            )
        if values.get("error_scale") is None:
            values["error_scale"] = ()
        try:
            return cls(**values)
        except TypeError as exc:
            raise BundleError(
                f"the vibration head lacks a field ({exc}): rebuild the bundle with "
                "`tinyfleet build vibration`"
            ) from exc


def _as_lists(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_as_lists(v) for v in value]
    return value
