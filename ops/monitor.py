"""Watch a deployed model: compare what devices report with what the model saw at calibration time.

Why: a model that was good on its held-out data goes wrong quietly when the world moves — a sensor's
gain changes, a machine runs at a new speed, a microphone is moved. The device keeps publishing
confident predictions; only their *distribution* shows it. This module keeps, per (device, task),
the last ``window`` predictions and compares them with the bundle's reference statistics:

* vibration: the anomaly-score distribution — PSI over the reference's decile bins and the
  two-sample Kolmogorov–Smirnov p-value against a stored sample of reference scores;
* every task: the share of windows that were not inferred (``valid: false``) against the
  reference rate, and silence (no prediction for ``silence_s`` seconds).

A change of status (``ok`` ↔ ``drift`` / ``silent``) becomes a :class:`HealthEvent`, published by
``tinyfleet monitor`` retained on ``tinyfleet/<device>/<task>/health``. The reference is a small
dict (:func:`score_reference`) stored in ``bundle.extra["monitoring"]``.

Not covered yet: KWS label priors/confidence and air-quality residuals against co-located
reference analysers (docs/mqtt.md, "health").
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_sim.errors import ConfigError
from device_sim.mqtt.payload import Prediction

MONITORING_KEY = "monitoring"
PSI_DRIFT = 0.25  # the usual reading: < 0.1 stable, 0.1–0.25 moderate, > 0.25 significant shift
KS_P_DRIFT = 1e-3
INVALID_RATE_MARGIN = 0.05  # invalid windows above reference rate + 5 points count as drift
REFERENCE_SAMPLE = 500
DECILES = np.linspace(0.1, 0.9, 9)


def score_reference(scores: np.ndarray, invalid_rate: float = 0.0) -> dict[str, Any]:
    """The reference statistics of anomaly scores seen on healthy held-out windows."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if len(scores) < 20:
        raise ConfigError(f"a monitoring reference needs >= 20 healthy scores, got {len(scores)}")
    rng = np.random.default_rng(0)
    sample = rng.choice(scores, size=min(REFERENCE_SAMPLE, len(scores)), replace=False)
    return {
        "field": "anomaly_score",
        "decile_edges": [float(v) for v in np.quantile(scores, DECILES)],
        "sample": [round(float(v), 6) for v in np.sort(sample)],
        "invalid_rate": float(invalid_rate),
        "windows": int(len(scores)),
    }


def psi(reference_edges: list[float], values: np.ndarray) -> float:
    """Population stability index of ``values`` over the reference deciles (10 % per bin)."""
    counts = np.bincount(np.searchsorted(reference_edges, values), minlength=10)
    current = np.maximum(counts / max(1, len(values)), 1e-4)
    expected = 0.1
    return float(np.sum((current - expected) * np.log(current / expected)))


@dataclass(frozen=True)
class HealthEvent:
    """A change of a (device, task)'s health: ``status`` is ``ok``, ``drift`` or ``silent``."""

    device: str
    task: str
    status: str
    reasons: tuple[str, ...]
    checks: dict[str, Any]
    ts_ms: int

    def payload(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "device": self.device,
            "task": self.task,
            "ts_ms": self.ts_ms,
            "status": self.status,
            "reasons": list(self.reasons),
            "checks": self.checks,
        }


@dataclass
class _Track:
    scores: deque = field(default_factory=lambda: deque(maxlen=200))
    valid: deque = field(default_factory=lambda: deque(maxlen=200))
    last_seen: float = 0.0
    status: str = "ok"


class HealthMonitor:
    """Feed predictions with :meth:`observe`; call :meth:`check_silence` now and then."""

    def __init__(
        self,
        references: dict[str, dict[str, Any]],
        *,
        window: int = 200,
        min_windows: int = 50,
        silence_s: float = 60.0,
    ) -> None:
        self.references = references
        self.window = window
        self.min_windows = min_windows
        self.silence_s = silence_s
        self.tracks: dict[tuple[str, str], _Track] = {}

    def observe(self, prediction: Prediction, now: float | None = None) -> HealthEvent | None:
        now = time.monotonic() if now is None else now
        key = (prediction.device, prediction.task)
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = _Track(deque(maxlen=self.window), deque(maxlen=self.window))
        track.last_seen = now
        track.valid.append(bool(prediction.valid))
        reference = self.references.get(prediction.task)
        if reference is not None and prediction.valid:
            value = prediction.fields.get(reference["field"])
            if isinstance(value, (int, float)):
                track.scores.append(float(value))
        if len(track.valid) < self.min_windows:
            return None
        status, reasons, checks = self._assess(track, reference)
        return self._transition(key, track, status, reasons, checks)

    def _assess(
        self, track: _Track, reference: dict[str, Any] | None
    ) -> tuple[str, list[str], dict[str, Any]]:
        reasons: list[str] = []
        invalid_rate = 1.0 - float(np.mean(track.valid))
        checks: dict[str, Any] = {
            "windows": len(track.valid),
            "invalid_rate": round(invalid_rate, 4),
        }
        allowed = (reference or {}).get("invalid_rate", 0.0) + INVALID_RATE_MARGIN
        if invalid_rate > allowed:
            reasons.append(f"{invalid_rate:.0%} of windows invalid (reference ≤ {allowed:.0%})")
        if reference is not None and len(track.scores) >= self.min_windows:
            from scipy.stats import ks_2samp

            values = np.asarray(track.scores)
            checks["psi"] = round(psi(reference["decile_edges"], values), 4)
            checks["ks_p"] = float(ks_2samp(values, reference["sample"]).pvalue)
            checks["median"] = round(float(np.median(values)), 6)
            checks["reference_median"] = round(float(np.median(reference["sample"])), 6)
            if checks["psi"] > PSI_DRIFT and checks["ks_p"] < KS_P_DRIFT:
                reasons.append(
                    f"{reference['field']} distribution moved: PSI {checks['psi']:.2f} "
                    f"(> {PSI_DRIFT}), KS p {checks['ks_p']:.1e}"
                )
        return ("drift" if reasons else "ok"), reasons, checks

    def _transition(
        self, key: tuple[str, str], track: _Track, status: str, reasons: list[str], checks: dict
    ) -> HealthEvent | None:
        if status == track.status:
            return None
        track.status = status
        return HealthEvent(key[0], key[1], status, tuple(reasons), checks, int(time.time() * 1000))

    def check_silence(self, now: float | None = None) -> list[HealthEvent]:
        """(device, task)s that published nothing for ``silence_s`` seconds."""
        now = time.monotonic() if now is None else now
        events = []
        for key, track in self.tracks.items():
            if track.status != "silent" and now - track.last_seen > self.silence_s:
                reason = f"no prediction for {now - track.last_seen:.0f} s"
                event = self._transition(key, track, "silent", [reason], {})
                if event is not None:
                    events.append(event)
        return events
