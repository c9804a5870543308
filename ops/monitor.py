"""Watch a deployed model: compare what devices report with what the model saw at calibration time.

Why: a model that was good on its held-out data goes wrong quietly when the world moves — a sensor's
gain changes, a machine runs at a new speed, a microphone is moved. The device keeps publishing
confident predictions; only their *distribution* shows it. This module keeps, per (device, task),
the last ``window`` predictions and compares them with the bundle's reference statistics
(``bundle.extra["monitoring"]``, see :mod:`device_sim.monitoring`). Which statistics a task has is
declared by its ``TaskSpec.drift``; this module names no task:

* a continuous statistic (an anomaly score, a top-class probability, an estimate) — PSI over the
  reference's decile bins and the two-sample Kolmogorov–Smirnov p-value against the stored
  reference sample; drift when PSI > :data:`PSI_DRIFT` *and* p < :data:`P_DRIFT`;
* a categorical one (a label) — PSI over the categories and the chi-square goodness-of-fit p-value
  of the window's counts against the reference shares; the same rule;
* every task: the share of windows that were not inferred (``valid: false``) against the
  reference rate, and silence (no prediction for ``silence_s`` seconds).

A change of status (``ok`` ↔ ``drift`` / ``silent``) becomes a :class:`HealthEvent`, published by
``tinyfleet monitor`` retained on ``tinyfleet/<device>/<task>/health``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_sim.monitoring import bin_index, normalise_reference
from device_sim.mqtt.payload import Prediction
from device_sim.tasks.spec import DriftStatistics

PSI_DRIFT = 0.25  # the usual reading: < 0.1 stable, 0.1–0.25 moderate, > 0.25 significant shift
P_DRIFT = 1e-3  # KS / chi-square p-value below which the window is unlikely under the reference
INVALID_RATE_MARGIN = 0.05  # invalid windows above reference rate + 5 points count as drift
HEALTH_SCHEMA = (
    2  # 2: ``checks.statistics`` per statistic (1 had one score's psi/ks_p at top level)
)
DEFAULT_WINDOW = 200  # for a task that declares no drift statistics (invalid windows, silence)
DEFAULT_MIN_WINDOWS = 50
SHARE_FLOOR = 1e-4  # an empty bin counts as this share in the PSI (log of 0 otherwise)


def psi(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` over a continuous reference's decile bins."""
    edges = reference["decile_edges"]
    expected = np.maximum(np.asarray(reference["bin_shares"], dtype=np.float64), SHARE_FLOOR)
    counts = np.bincount(bin_index(edges, values), minlength=len(edges) + 1)
    current = np.maximum(counts / max(1, len(values)), SHARE_FLOOR)
    return float(np.sum((current - expected) * np.log(current / expected)))


def categorical_psi(reference_shares: Mapping[str, float], values: list[str]) -> float:
    """PSI of the label frequencies of ``values`` against the reference shares."""
    names = list(reference_shares)
    expected = np.maximum([reference_shares[n] for n in names], SHARE_FLOOR)
    current = np.maximum([values.count(n) / max(1, len(values)) for n in names], SHARE_FLOOR)
    return float(np.sum((current - expected) * np.log(current / expected)))


def chi_square_p(reference_shares: Mapping[str, float], values: list[str]) -> float:
    """p-value of the window's label counts under the reference shares (Pearson chi-square).

    Categories the reference never saw get a floor share, so a label that appears out of nowhere
    counts against the reference instead of dividing by zero.
    """
    from scipy.stats import chisquare

    names = list(reference_shares)
    observed = np.array([values.count(n) for n in names], dtype=np.float64)
    shares = np.maximum([reference_shares[n] for n in names], SHARE_FLOOR)
    expected = shares / shares.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


def _continuous(reference: Mapping[str, Any], values: list) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    array = np.asarray(values, dtype=np.float64)
    return {
        "psi": round(psi(reference, array), 4),
        "p": float(ks_2samp(array, reference["sample"]).pvalue),
        "test": "ks",
        "median": round(float(np.median(array)), 6),
        "reference_median": round(float(np.median(reference["sample"])), 6),
    }


def _categorical(reference: Mapping[str, Any], values: list) -> dict[str, Any]:
    shares = reference["categories"]
    labels = [str(v) for v in values]
    top = max(set(labels), key=labels.count)
    return {
        "psi": round(categorical_psi(shares, labels), 4),
        "p": chi_square_p(shares, labels),
        "test": "chi2",
        "top": top,
        "top_share": round(labels.count(top) / len(labels), 4),
        "reference_top_share": round(float(shares.get(top, 0.0)), 4),
    }


COMPARE: dict[str, Callable[[Mapping[str, Any], list], dict[str, Any]]] = {
    "continuous": _continuous,
    "categorical": _categorical,
}


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
            "schema": HEALTH_SCHEMA,
            "device": self.device,
            "task": self.task,
            "ts_ms": self.ts_ms,
            "status": self.status,
            "reasons": list(self.reasons),
            "checks": self.checks,
        }


@dataclass
class _Track:
    valid: deque
    min_windows: int
    values: dict[str, deque] = field(default_factory=dict)
    last_seen: float = 0.0
    status: str = "ok"


def _drift(task: str) -> DriftStatistics | None:
    from device_sim.errors import TinyfleetError
    from device_sim.tasks import spec_for

    try:
        return spec_for(task).drift
    except TinyfleetError:
        return None


class HealthMonitor:
    """Feed predictions with :meth:`observe`; call :meth:`check_silence` now and then.

    ``references`` maps a task to its bundle's recorded reference (either schema); a task without
    one is still watched for invalid windows and silence.
    """

    def __init__(
        self,
        references: dict[str, dict[str, Any]],
        *,
        window: int | None = None,
        min_windows: int | None = None,
        silence_s: float = 60.0,
    ) -> None:
        self.references = {task: normalise_reference(r) for task, r in references.items()}
        self.drift = {task: _drift(task) for task in self.references}
        self.window = window
        self.min_windows = min_windows
        self.silence_s = silence_s
        self.tracks: dict[tuple[str, str], _Track] = {}

    def _sizes(self, task: str) -> tuple[int, int]:
        """(window, min_windows) for ``task``: the arguments, else what its spec declares."""
        drift = self.drift.get(task)
        window = self.window or (drift.window if drift else DEFAULT_WINDOW)
        wanted = self.min_windows or (drift.min_windows if drift else DEFAULT_MIN_WINDOWS)
        return window, min(wanted, window)

    def observe(self, prediction: Prediction, now: float | None = None) -> HealthEvent | None:
        now = time.monotonic() if now is None else now
        key = (prediction.device, prediction.task)
        window, min_windows = self._sizes(prediction.task)
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = _Track(deque(maxlen=window), min_windows=min_windows)
        track.last_seen = now
        track.valid.append(bool(prediction.valid))
        reference = self.references.get(prediction.task)
        drift = self.drift.get(prediction.task)
        if reference is not None and drift is not None and prediction.valid:
            statistics = reference["statistics"]
            for name, value in drift.observe(prediction.fields).items():
                if name not in statistics or value is None:
                    continue
                if statistics[name]["kind"] == "continuous":
                    if not isinstance(value, (int, float)) or not np.isfinite(value):
                        continue
                    value = float(value)
                values = track.values.setdefault(name, deque(maxlen=window))
                values.append(value)
        if len(track.valid) < min_windows:
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
        if reference is None:
            return ("drift" if reasons else "ok"), reasons, checks
        compared: dict[str, Any] = {}
        for name, statistic in reference["statistics"].items():
            values = list(track.values.get(name, ()))
            if len(values) < track.min_windows:
                continue  # e.g. residuals: only predictions that carry a reference value count
            result = compared[name] = COMPARE[statistic["kind"]](statistic, values)
            if result["psi"] > PSI_DRIFT and result["p"] < P_DRIFT:
                test = "KS" if result["test"] == "ks" else "chi-square"
                reasons.append(
                    f"{name} distribution moved: PSI {result['psi']:.2f} (> {PSI_DRIFT}), "
                    f"{test} p {result['p']:.1e}"
                )
        checks["statistics"] = compared
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
