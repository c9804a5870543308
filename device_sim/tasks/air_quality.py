"""Air-quality task on the device: model output → concentration estimates, an air-quality band, events.

The model outputs, per target, a z-score of the log concentration: ``value = exp(output * log_std +
log_mean) - offset`` (statistics from the training part, in ``bundle.head["targets"]``). One int8
output tensor has one scale, so it could not hold CO in mg/m³ (0–10) and NO2 in µg/m³ (0–300) at the
same resolution; in log space every target gets the same *relative* resolution (about 1–2 % per
int8 step), which suits skewed, positive concentrations. :func:`decode_outputs` is the only decoder:
the evaluation in ``training/air_quality.py`` uses it too, so the scored figures are the device's.

The band is the worst of the per-pollutant bands (see :func:`band_indices`). Its thresholds are in
``bundle.head["bands"]``, with their source: by default the hourly grid of the European Common Air
Quality Index (CAQI) for NO2 and CO. They are *indicative*: a low-cost sensor estimate is not a
regulatory measurement, and benzene is not banded because EU/WHO set only an annual-mean limit for
it (5 µg/m³), not an hourly one.

The payload's ``band`` is the band of the current hour. A ``band_changed`` event is sent only when a
new band has held for ``bands["confirm_windows"]`` consecutive valid windows (2 by default): near a
threshold the hourly band flickers, and a subscriber wants one event per real change, not a storm.

A window with a missing input is not inferred: the device loop asks :meth:`TaskRuntime.check_window`
first and publishes :meth:`TaskRuntime.invalid_result` (``valid: false`` with a reason) instead.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks import TaskResult

log = logging.getLogger(__name__)

BAND_NAMES = ("very_low", "low", "medium", "high", "very_high")
# CAQI hourly grid (Common Air Quality Index, CITEAIR project, used on airqualitynow.eu): upper
# limits of the very_low / low / medium / high classes. CO is the CAQI's 8-hour grid applied to the
# hourly estimate, which makes it stricter than the index itself.
DEFAULT_BANDS: dict[str, Any] = {
    "names": list(BAND_NAMES),
    "thresholds": {"NO2": [50.0, 100.0, 200.0, 400.0], "CO": [5.0, 7.5, 10.0, 20.0]},
    "units": {"NO2": "µg/m³", "CO": "mg/m³"},
    "source": "CAQI (Common Air Quality Index, CITEAIR) hourly grid: NO2 50/100/200/400 µg/m³, "
    "CO 5/7.5/10/20 mg/m³ (8-hour grid used hourly); benzene not banded (EU limit 5 µg/m³ is an "
    "annual mean)",
    "note": "indicative only: estimates from low-cost sensors, not regulatory measurements",
    "confirm_windows": 2,
}


OUTPUT_CLIP = 6.0  # log-space z-scores beyond ±6 σ are clipped (training clips the same way)


def decode_outputs(outputs: np.ndarray, head: Mapping[str, Any]) -> np.ndarray:
    """Model outputs ``(..., n_targets)`` → concentrations in the targets' units (≥ 0)."""
    targets = head["targets"]
    log_mean = np.array([t["log_mean"] for t in targets], dtype=np.float64)
    log_std = np.array([t["log_std"] for t in targets], dtype=np.float64)
    offset = np.array([t["offset"] for t in targets], dtype=np.float64)
    z = np.clip(np.asarray(outputs, dtype=np.float64), -OUTPUT_CLIP, OUTPUT_CLIP)
    return np.maximum(np.exp(z * log_std + log_mean) - offset, 0.0)


def band_indices(
    values: np.ndarray, keys: Sequence[str], bands: Mapping[str, Any] = DEFAULT_BANDS
) -> np.ndarray:
    """Band index (0 = very_low …) per row of ``values`` ``(n, len(keys))``: the worst pollutant.

    Only pollutants with thresholds count; a row whose banded values are all NaN gets -1.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    worst = np.full(len(values), -1, dtype=np.int64)
    for key, limits in bands["thresholds"].items():
        if key not in keys:
            continue
        column = values[:, list(keys).index(key)]
        index = np.searchsorted(np.asarray(limits, dtype=np.float64), column, side="right")
        index = np.where(np.isfinite(column), index, -1)
        worst = np.maximum(worst, index)
    return worst


class TaskRuntime:
    """Turns each hourly window's model output into estimates, a band and band-change events."""

    hop_samples = 1  # one estimate per new row (hourly)

    def __init__(self, bundle: Bundle) -> None:
        head = bundle.head
        try:
            self.targets = list(head["targets"])
            self.keys = [t["key"] for t in self.targets]
            self.units = [t["unit"] for t in self.targets]
            self.bands = dict(head.get("bands") or DEFAULT_BANDS)
            self.band_names = list(self.bands["names"])
        except (KeyError, TypeError) as exc:
            raise BundleError(
                f"{bundle.manifest_path}: the air_quality head lacks {exc}; rebuild the bundle"
            ) from exc
        if bundle.output.shape[-1] != len(self.targets):
            raise BundleError(
                f"{bundle.manifest_path}: the model has {bundle.output.shape[-1]} outputs but the "
                f"head lists {len(self.targets)} targets; rebuild the bundle"
            )
        self.head = head
        self.inputs = list(bundle.feature_config["inputs"])
        self.window_rows = int(bundle.feature_config["window_rows"])
        explain = head.get("explain") or {}
        self.explanation = explain.get("per_target") if explain.get("in_payload") else None
        self.confirm_windows = max(1, int(self.bands.get("confirm_windows", 1)))
        # decode_outputs / band_indices constants, built once rather than once per window
        self._log_mean = np.array([t["log_mean"] for t in self.targets], dtype=np.float64)
        self._log_std = np.array([t["log_std"] for t in self.targets], dtype=np.float64)
        self._offset = np.array([t["offset"] for t in self.targets], dtype=np.float64)
        self._band_limits = [
            (self.keys.index(key), [float(limit) for limit in limits])
            for key, limits in self.bands["thresholds"].items()
            if key in self.keys
        ]
        self.band: str | None = None  # the last confirmed (reported) band
        self._candidate: str | None = None
        self._candidate_count = 0

    def check_window(self, window: np.ndarray) -> str | None:
        """Why ``window`` (``(window_rows, n_inputs)`` raw rows) must not be inferred, or None."""
        window = np.asarray(window, dtype=np.float64)
        expected = (self.window_rows, len(self.inputs))
        if window.shape != expected:
            return f"window has shape {window.shape}, expected {expected}"
        finite = np.isfinite(window)
        if finite.all():
            return None
        missing = ~finite
        names = [name for name, gone in zip(self.inputs, missing.any(axis=0), strict=True) if gone]
        rows = int(missing.any(axis=1).sum())
        return f"missing {', '.join(names)} in {rows} of {self.window_rows} hours"

    def invalid_result(self, reason: str) -> TaskResult:
        """The payload for a window that was not inferred; the band (and its events) stays as is."""
        return TaskResult(fields={"valid": False, "reason": reason})

    def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult:
        """One window's dequantized output (log-space z-scores) → estimates, band, event."""
        if not np.isfinite(features).all():
            return self.invalid_result(
                "features are not finite (a missing input reached the model)"
            )
        # decode_outputs and band_indices for one window, with the constants prepared in __init__
        z = np.asarray(output, dtype=np.float64).reshape(-1)
        z = np.maximum(np.minimum(z, OUTPUT_CLIP), -OUTPUT_CLIP)  # np.clip, without its overhead
        values = np.maximum(np.exp(z * self._log_std + self._log_mean) - self._offset, 0.0)
        value_list = values.tolist()
        estimates = {
            key: {"value": round(value, 3), "unit": unit}
            for key, value, unit in zip(self.keys, value_list, self.units, strict=True)
        }
        index = -1
        for column, limits in self._band_limits:
            value = value_list[column]
            if math.isfinite(value):
                index = max(index, bisect.bisect_right(limits, value))  # = searchsorted "right"
        band = self.band_names[index] if index >= 0 else None
        fields: dict[str, Any] = {"valid": True, "estimates": estimates, "band": band}
        if self.explanation:
            fields["explain"] = self.explanation
        return TaskResult(fields=fields, event=self._track_band(band, estimates))

    def _track_band(self, band: str | None, estimates: dict[str, Any]) -> dict[str, Any] | None:
        """Confirm a band after ``confirm_windows`` windows in a row; the event on a change."""
        if band is None:
            return None
        if self.band is None or band == self.band:
            self.band = band if self.band is None else self.band
            self._candidate, self._candidate_count = None, 0
            return None
        if band == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = band, 1
        if self._candidate_count < self.confirm_windows:
            return None
        previous, self.band = self.band, band
        self._candidate, self._candidate_count = None, 0
        log.info("air-quality band %s → %s", previous, band)
        return {
            "type": "band_changed",
            "from": previous,
            "to": band,
            "estimates": {key: e["value"] for key, e in estimates.items()},
        }
