"""Vibration task runtime: anomaly score, threshold, an explanation, and debounced alarm events.

The model is an autoencoder over standardised features; the **anomaly score** of a window is the
mean squared *normalised* reconstruction error ``mean(((features - output) / error_scale)²)``, where
``bundle.head["error_scale"]`` is each feature's RMS reconstruction error on normal training
windows. Without it a fault that moves two or three features (imbalance lifts only the 1x orders)
would drown in the ordinary error of the other ~58. The training stage uses the same function
to calibrate ``bundle.head["anomaly_threshold"]`` for a target false-alarm rate per window.

**Debouncing (k-of-n):** a single window over the threshold is not an alarm. The alarm is *raised*
when at least ``alarm_k`` of the last ``alarm_n`` valid windows are anomalous and *cleared* when
none of the last ``alarm_n`` valid windows are (hysteresis, so a machine near the threshold does
not flap). Both come from the bundle head (default 5 of 8 windows, 2.6 s at the default hop:
speed ramps make a few consecutive normal windows score high, and 3 of 5 let those through).
Each change publishes one event.

**Invalid windows** (NaN/Inf, clipped or flat samples) must not be inferred: call
:meth:`TaskRuntime.check_window` on the raw window before the front end and, if it returns a
reason, publish :meth:`TaskResult` from :meth:`TaskRuntime.invalid_result` instead of running the
model. Such windows do not enter the k-of-n history. ``process`` also refuses non-finite features.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.features.vibration import validate_window
from device_sim.tasks import TaskResult
from device_sim.tasks.vibration.head import VibrationHead

TOP_CONTRIBUTORS = 3


def reconstruction_error(
    features: np.ndarray, output: np.ndarray, error_scale: np.ndarray | None = None
) -> np.ndarray:
    """Anomaly score: mean over the last axis of ``((features - output) / error_scale)²``.

    Pass ``bundle.head["error_scale"]``; without it (None) this is the plain mean squared error.
    """
    residual = np.asarray(features, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    if error_scale is not None:
        residual = residual / np.asarray(error_scale, dtype=np.float64)
    return np.mean(residual**2, axis=-1)


class TaskRuntime:
    """Turns each window's reconstruction into payload fields and raised/cleared alarm events."""

    def __init__(self, bundle: Bundle) -> None:
        config = bundle.feature_config
        try:
            self.head = VibrationHead.from_dict(bundle.head)
        except BundleError as exc:
            raise BundleError(f"{bundle.manifest_path}: {exc}") from exc
        head = self.head
        try:
            self.threshold = float(head.anomaly_threshold)
            self.hop_samples = int(config["hop_samples"])
            self.full_scale_g = float(config.get("full_scale_g", 16.0))
            self.feature_names = list(head.feature_names)
            self.feature_ranges_hz = list(head.feature_ranges_hz)
            self.error_scale = np.asarray(head.error_scale or 1.0, dtype=np.float64)
            self.feature_orders = list(head.feature_orders or [None] * len(self.feature_names))
            mean, scale = config.get("mean") or [], config.get("scale") or []
            # the last feature is log10 shaft speed when orders are measured: undo standardising
            self._speed_unscale = (
                (float(mean[-1]), float(scale[-1]))
                if "shaft speed" in (self.feature_names[-1:]) and mean
                else None
            )
            self._half_lobe_hz = 2 * float(config["sample_rate"]) / int(config["window_samples"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"{bundle.manifest_path} lacks the vibration feature config ({exc!r}): rebuild "
                "the bundle with `tinyfleet build vibration`"
            ) from exc
        self.alarm_k = head.alarm_k
        self.alarm_n = head.alarm_n
        self._history: deque[bool] = deque(maxlen=self.alarm_n)
        self.alarm = False

    def check_window(self, window: np.ndarray) -> str | None:
        """Reason the raw window ``(samples, axes)`` in g must not be inferred, or None."""
        return validate_window(window, self.full_scale_g)

    def invalid_result(self, reason: str) -> TaskResult:
        """What to publish for a window that was not inferred; the alarm state is unchanged."""
        return TaskResult(
            fields={
                "valid": False,
                "reason": reason,
                "alarm": self.alarm,
                "threshold": self.threshold,
            }
        )

    def shaft_speed_hz(self, features: np.ndarray) -> float | None:
        """The front end's tacho-less shaft-speed estimate for this window (Hz), if it has one."""
        if self._speed_unscale is None:
            return None
        mean, scale = self._speed_unscale
        return float(10 ** (float(features[-1]) * scale + mean))

    def _hz_range(self, index: int, speed: float | None) -> list[float]:
        """A band's or statistic's fixed range; for a shaft order, order × this window's speed."""
        order = self.feature_orders[index]
        if order is not None and speed is not None:
            centre = order * speed
            return [round(centre - self._half_lobe_hz, 1), round(centre + self._half_lobe_hz, 1)]
        low, high = self.feature_ranges_hz[index]
        return [round(low, 1), round(high, 1)]

    def explain(self, features: np.ndarray, output: np.ndarray) -> list[dict[str, Any]]:
        """The features that contribute most to the error, with their frequency range in Hz."""
        speed = self.shaft_speed_hz(features)
        residual = np.asarray(features, np.float64) - np.asarray(output, np.float64)
        errors = (residual / self.error_scale) ** 2
        total = float(errors.sum()) or 1.0
        top = np.argsort(errors)[::-1][:TOP_CONTRIBUTORS]
        return [
            {
                "feature": self.feature_names[i],
                "hz": self._hz_range(int(i), speed),
                "share": round(float(errors[i]) / total, 3),
                # > 0: more energy/impulsiveness than the model expects for this machine state
                "direction": "high" if features[i] > output[i] else "low",
            }
            for i in top
        ]

    def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult:
        features = np.asarray(features, dtype=np.float32).reshape(-1)
        output = np.asarray(output, dtype=np.float32).reshape(-1)
        if features.shape != output.shape or len(features) != len(self.feature_names):
            raise BundleError(
                f"model output {output.shape} / features {features.shape} do not match the "
                f"bundle's {len(self.feature_names)} features: rebuild the bundle"
            )
        if not (np.all(np.isfinite(features)) and np.all(np.isfinite(output))):
            return self.invalid_result("non-finite features")
        score = float(reconstruction_error(features, output, self.error_scale))
        anomalous = score > self.threshold
        self._history.append(anomalous)
        explanation = self.explain(features, output)
        event = None
        count = sum(self._history)
        if not self.alarm and count >= self.alarm_k:
            self.alarm = True
            event = self._event("raised", score, explanation, count)
        elif self.alarm and count == 0 and len(self._history) == self.alarm_n:
            self.alarm = False
            event = self._event("cleared", score, explanation, count)
        fields = {
            "valid": True,
            "anomaly_score": round(score, 5),
            "threshold": self.threshold,
            "anomaly": bool(anomalous),
            "alarm": self.alarm,
            "top_features": explanation,
        }
        speed = self.shaft_speed_hz(features)
        if speed is not None:
            fields["shaft_speed_hz"] = round(speed, 2)
        return TaskResult(fields=fields, event=event)

    def _event(self, state: str, score: float, explanation: list, count: int) -> dict[str, Any]:
        return {
            "type": "vibration_alarm",
            "state": state,
            "anomaly_score": round(score, 5),
            "threshold": self.threshold,
            "anomalous_windows": f"{count} of last {len(self._history)}",
            "rule": f"raise at >= {self.alarm_k} of {self.alarm_n}, clear at 0 of {self.alarm_n}",
            "top_features": explanation,
        }
