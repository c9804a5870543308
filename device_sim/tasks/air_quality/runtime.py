"""Air-quality task on the device: model output → concentration estimates, an air-quality band, events.

The model outputs, per target, the residual of a float calibration curve in log-concentration z
units: ``z = prior(features) + residual_scale * output`` (:class:`CurvePrior`, when the head has
one), then the field correction ``z' = gain * z + bias`` (``head["correction"]``, written by
``tinyfleet calibrate``) and ``value = exp(z' * log_std + log_mean) - offset`` (statistics from the
training part, in ``bundle.head["targets"]``). One int8 output tensor has one scale, so it could not
hold CO in mg/m³ (0–10) and NO2 in µg/m³ (0–300) at the same resolution; in log space, relative to
each target's residual spread, every target gets its own resolution. :class:`OutputDecoder` is the
only decoder: the evaluation in ``training/air_quality.py`` uses it too, so the scored figures are
the device's.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks import TaskResult
from device_sim.tasks.air_quality.head import AirQualityHead

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
VALUE_DECIMALS = 3  # estimates in the payload (the drift reference rounds the same way)


def hinge_basis(
    features: np.ndarray, feature_index: Sequence[int], knots: Sequence[Sequence[float]]
) -> np.ndarray:
    """Features ``(n, F)`` → piecewise-linear basis ``(n, B)``: per input f, then max(f − knot, 0)."""
    features = np.atleast_2d(np.asarray(features, dtype=np.float64))
    parts = []
    for index, input_knots in zip(feature_index, knots, strict=True):
        f = features[:, index : index + 1]
        parts.append(f)
        if len(input_knots):
            parts.append(np.maximum(f - np.asarray(input_knots, dtype=np.float64), 0.0))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class CurvePrior:
    """Per-target calibration curves in float, added to the int8 network's (scaled) output.

    ``z = bias + Σ_i (slope[i]·f_i + Σ_k hinge[i][k]·max(f_i − knots[i][k], 0))`` over the current
    hour's front-end features ``f_i`` (``feature_index``): one piecewise-linear curve per input and
    target in log-concentration z units, which extrapolates linearly beyond its last knot. A MOX
    sensor's response to its gas is such a smooth monotone curve (benzene from ``PT08.S2`` to
    0.03 µg/m³); an int8 output step (≈ 1–2 % of the value) cannot resolve it, but a float curve of
    ~60 numbers per target can. The int8 network then learns only the residual, scaled per target
    by ``residual_scale`` so one output tensor scale serves all targets at their own resolution.
    """

    feature_index: tuple[int, ...]
    knots: tuple[tuple[float, ...], ...]  # per input
    bias: tuple[float, ...]  # per target
    slope: tuple[tuple[float, ...], ...]  # [target][input]
    hinge: tuple[tuple[tuple[float, ...], ...], ...]  # [target][input][knot]
    residual_scale: tuple[float, ...]  # per target: z = prior + residual_scale * output

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurvePrior:
        try:
            prior = cls(
                feature_index=tuple(int(i) for i in data["feature_index"]),
                knots=tuple(tuple(float(k) for k in ks) for ks in data["knots"]),
                bias=tuple(float(b) for b in data["bias"]),
                slope=tuple(tuple(float(v) for v in row) for row in data["slope"]),
                hinge=tuple(
                    tuple(tuple(float(v) for v in ks) for ks in row) for row in data["hinge"]
                ),
                residual_scale=tuple(float(v) for v in data["residual_scale"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"air_quality head: malformed curve prior ({exc}); rebuild") from exc
        n_targets, n_inputs = len(prior.bias), len(prior.feature_index)
        shapes_ok = (
            len(prior.knots) == n_inputs
            and len(prior.slope) == n_targets
            and len(prior.hinge) == n_targets
            and len(prior.residual_scale) == n_targets
            and all(len(row) == n_inputs for row in prior.slope)
            and all(
                len(row) == n_inputs
                and all(len(h) == len(k) for h, k in zip(row, prior.knots, strict=False))
                for row in prior.hinge
            )
        )
        if not shapes_ok:
            raise BundleError("air_quality head: curve prior tables do not match; rebuild")
        return prior

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_index": list(self.feature_index),
            "knots": [list(k) for k in self.knots],
            "bias": list(self.bias),
            "slope": [list(row) for row in self.slope],
            "hinge": [[list(h) for h in row] for row in self.hinge],
            "residual_scale": list(self.residual_scale),
        }

    @property
    def n_values(self) -> int:
        """Float constants a device needs (4 bytes each in C): inputs no curve uses are left out."""
        used = [
            i
            for i in range(len(self.feature_index))
            if any(
                row[i] != 0.0 or any(h[i]) for row, h in zip(self.slope, self.hinge, strict=True)
            )
        ]
        n_knots = sum(len(self.knots[i]) for i in used)
        # knots, then per target: bias, residual scale, and a slope + hinge weights per used input
        return n_knots + len(self.bias) * (2 + len(used) + n_knots)

    def basis(self, features: np.ndarray) -> np.ndarray:
        return hinge_basis(features, self.feature_index, self.knots)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(B, n_targets)`` weights of :meth:`basis` and the ``(n_targets,)`` bias."""
        columns = []
        for slope, hinge in zip(self.slope, self.hinge, strict=True):
            column = []
            for s, h in zip(slope, hinge, strict=True):
                column += [s, *h]
            columns.append(column)
        return np.array(columns, dtype=np.float64).T, np.array(self.bias, dtype=np.float64)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """The curves' z ``(n, n_targets)`` for features ``(n, F)``."""
        weights, bias = self.weights()
        return self.basis(features) @ weights + bias


@dataclass(frozen=True)
class OutputDecoder:
    """Model output (and features) → concentrations: the one decoder, device and evaluation alike.

    ``z = gain · (prior(features) + residual_scale · output) + bias`` with the post-deployment
    correction (``gain``/``bias`` per target, 1/0 until ``tinyfleet calibrate`` fits them), then
    ``value = exp(clip(z) · log_std + log_mean) − offset``, clipped at 0.
    """

    log_mean: np.ndarray
    log_std: np.ndarray
    offset: np.ndarray
    prior: CurvePrior | None
    gain: np.ndarray
    bias: np.ndarray

    @classmethod
    def from_head(cls, head: Mapping[str, Any] | AirQualityHead) -> OutputDecoder:
        """From the bundle head: typed, or its JSON (whole, or as far as training has built it)."""
        if not isinstance(head, AirQualityHead):
            head = AirQualityHead.from_dict(head)
        targets = head.targets
        n = len(targets)
        try:
            columns = [
                np.array([float(t[key]) for t in targets])
                for key in ("log_mean", "log_std", "offset")
            ]
            correction = head.correction or {}
            gain = np.array([float(v) for v in correction.get("gain", [1.0] * n)])
            bias = np.array([float(v) for v in correction.get("bias", [0.0] * n)])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"air_quality head lacks or garbles {exc}; rebuild the bundle"
            ) from exc
        if len(gain) != n or len(bias) != n:
            raise BundleError(f"air_quality head: correction needs {n} gains and biases")
        prior = CurvePrior.from_dict(head.prior) if head.prior else None
        return cls(*columns, prior, gain, bias)

    def z(self, outputs: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Log-space z ``(n, n_targets)`` before the correction and clipping."""
        outputs = np.atleast_2d(np.asarray(outputs, dtype=np.float64))
        if self.prior is None:
            return outputs
        if features is None:
            raise BundleError("this air_quality head has a curve prior: decode needs the features")
        residual = np.asarray(self.prior.residual_scale)
        return self.prior(features) + residual * outputs

    def __call__(self, outputs: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        return self.values(self.z(outputs, features))

    def encode(self, values: np.ndarray, target: int) -> np.ndarray:
        """Concentrations of target ``target`` → its log-space z (the inverse of the decoding)."""
        logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), 0.0) + self.offset[target])
        return (logs - self.log_mean[target]) / self.log_std[target]

    def values(self, z: np.ndarray) -> np.ndarray:
        """Uncorrected z → concentrations, with the correction applied."""
        z = np.clip(z * self.gain + self.bias, -OUTPUT_CLIP, OUTPUT_CLIP)
        return np.maximum(np.exp(z * self.log_std + self.log_mean) - self.offset, 0.0)


def decode_outputs(
    outputs: np.ndarray,
    head: Mapping[str, Any] | AirQualityHead,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Model outputs ``(..., n_targets)`` → concentrations in the targets' units (≥ 0).

    ``features`` (the front end's output for the same windows) are needed when the head has a
    curve prior (see :class:`OutputDecoder`).
    """
    outputs = np.asarray(outputs)
    values = OutputDecoder.from_head(head)(outputs.reshape(-1, outputs.shape[-1]), features)
    return values.reshape(outputs.shape)


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
        try:
            head = AirQualityHead.from_dict(bundle.head)
        except BundleError as exc:
            raise BundleError(f"{bundle.manifest_path}: {exc}") from exc
        try:
            self.targets = list(head.targets)
            self.keys = [t["key"] for t in self.targets]
            self.units = [t["unit"] for t in self.targets]
            self.bands = dict(head.bands or DEFAULT_BANDS)
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
        explain = head.explain or {}
        self.explanation = explain.get("per_target") if explain.get("in_payload") else None
        self.confirm_windows = max(1, int(self.bands.get("confirm_windows", 1)))
        # decoder and band constants, built once rather than once per window
        self.decoder = OutputDecoder.from_head(head)
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
        values = self.decoder(np.asarray(output).reshape(1, -1), features.reshape(1, -1))[0]
        value_list = values.tolist()
        estimates = {
            key: {"value": round(value, VALUE_DECIMALS), "unit": unit}
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
