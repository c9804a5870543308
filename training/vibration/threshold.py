"""An anomaly threshold you can trust from a few seconds of normal data, with its expected FAR.

A plain quantile of held-out normal scores needs ~1/FAR independent windows; 5 s of data in 0.1 s
windows is ~50 of them, so the 99.5 % quantile is just the largest score seen and later normal
windows exceed it far more often than the target. Here the upper tail is modelled instead
(peaks over threshold, the extreme-value method): above their 80th percentile, **log** scores are
taken as exponential (a Pareto tail of the score — heavier than the Gaussian-like bulk, so the
extrapolation errs towards fewer false alarms). The threshold is where that tail, with its scale
at the one-sided 95 % upper confidence bound, falls to the target false-alarm rate — so the
margin grows by itself when windows are few and shrinks when they are many — and never below the empirical ``1 - EMPIRICAL_FLOOR_FACTOR x target``
quantile. That floor is deliberately looser than the target: real normal data hold rare impulsive
windows (on the UESTC rig ~0.5 % of 800 rpm windows have kurtosis 17 sigma above the mean, a knock
or a particle), and a floor at the target quantile lands on them and blinds the detector to subtle
faults (int8 ball-fault detection fell from 100 % to 0.4 %).

Overlapping windows are not independent: ``overlap`` (window / hop) divides the window counts
before any uncertainty is computed. Reported with the threshold:

* ``expected_false_alarm_rate``: the tail model's FAR at the threshold, with the tail's scale at
  its one-sided 95 % upper bound (chi-squared interval of an exponential mean from the effective
  number of tail windows) — the target when the tail set the threshold — or the calibration
  windows' own exceedance rate if that is higher. (The point estimate of the tail model is far
  lower and was far too optimistic on real data, so it is not reported.)
* ``false_alarm_rate_upper_95``: what the calibration windows alone can support, model-free
  (Clopper-Pearson upper bound from the exceedances and effective windows): wide when data are
  few — 5 s per condition cannot demonstrate 0.5 %, and this number says so.

Both assume later normal data look like the calibration windows (same conditions, no drift).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from device_sim.errors import DataError
from device_sim.tasks.vibration import reconstruction_error

TAIL_QUANTILE = 0.8  # tail model fitted to scores above this quantile
TAIL_CONFIDENCE = 0.95  # one-sided level of the tail scale's upper bound
MIN_TAIL_WINDOWS = 5
EMPIRICAL_FLOOR_FACTOR = 2.0  # floor quantile: at most 2 x target of calibration windows above


@dataclass(frozen=True)
class ThresholdCalibration:
    """A calibrated threshold and what it is expected to do on normal windows (per window)."""

    anomaly_threshold: float
    target_false_alarm_rate: float
    expected_false_alarm_rate: float
    false_alarm_rate_upper_95: float
    calibration_windows: int
    effective_windows: float
    exceedances: int
    method: str

    def to_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def calibrate_threshold(scores: np.ndarray, target_far: float) -> float:
    """The smallest observed score that keeps at most ``target_far`` of ``scores`` above it."""
    if len(scores) == 0:
        raise DataError("no calibration windows to set the anomaly threshold from")
    return float(np.quantile(scores, 1.0 - target_far, method="higher"))


def calibrate_tail(
    scores: np.ndarray,
    target_far: float,
    overlap: float = 1.0,
    *,
    tail_quantile: float = TAIL_QUANTILE,
    confidence: float = TAIL_CONFIDENCE,
) -> ThresholdCalibration:
    """Threshold for ``target_far`` per window from normal ``scores`` (> 0), see module docs.

    ``overlap`` is window length / hop of the calibration windows (1 = disjoint windows);
    ``tail_quantile`` where the tail starts, ``confidence`` the one-sided level of its scale.
    """
    scores = np.asarray(scores, dtype=np.float64)
    empirical = calibrate_threshold(scores, min(EMPIRICAL_FLOOR_FACTOR * target_far, 0.5))
    n_eff = max(len(scores) / max(overlap, 1.0), 1.0)
    logs = np.log(np.maximum(scores, 1e-12))
    floor = float(np.quantile(logs, tail_quantile))
    excess = logs[logs > floor] - floor
    tail_share = 1.0 - tail_quantile
    if len(excess) >= MIN_TAIL_WINDOWS and excess.mean() > 0:
        scale = float(excess.mean())
        tail_eff = max(len(excess) / max(overlap, 1.0), 1.0)
        # exponential mean: 2 m mean / scale ~ chi2(2 m); one-sided 95 % upper bound of the scale
        scale_upper = scale * 2 * tail_eff / stats.chi2.ppf(1.0 - confidence, 2 * tail_eff)
        tail_threshold = float(np.exp(floor + scale_upper * np.log(tail_share / target_far)))
        threshold = max(empirical, tail_threshold)
        method = "log-exponential tail (POT)" if tail_threshold >= empirical else "empirical"
        expected = tail_share * float(np.exp(-(np.log(threshold) - floor) / scale_upper))
    else:  # too few distinct scores for a tail: fall back to the quantile
        threshold, method = empirical, "empirical"
        expected = float("nan")
    exceedances = int(np.sum(scores > threshold))
    k_eff = exceedances / max(overlap, 1.0)
    data_bound = float(stats.beta.ppf(0.95, k_eff + 1, n_eff - k_eff)) if n_eff > k_eff else 1.0
    if not np.isfinite(expected):
        expected = (k_eff + 1) / (n_eff + 1)
    # the tail model cannot promise fewer alarms than the calibration windows already showed
    expected = max(expected, exceedances / len(scores))
    return ThresholdCalibration(
        anomaly_threshold=threshold,
        target_false_alarm_rate=float(target_far),
        expected_false_alarm_rate=round(expected, 6),
        false_alarm_rate_upper_95=round(max(data_bound, expected), 6),
        calibration_windows=len(scores),
        effective_windows=round(n_eff, 1),
        exceedances=exceedances,
        method=method,
    )


def calibrate_head(
    predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray], head: dict
) -> dict:
    """The head with ``anomaly_threshold`` re-calibrated for ``predict`` (e.g. the int8 model).

    The float model's threshold is kept as ``float_anomaly_threshold``.
    """
    x_cal = evaluation["x_calibration"]
    scores = reconstruction_error(x_cal, predict(x_cal), head.get("error_scale"))
    overlap = float(evaluation.get("calibration_overlap", 1.0))
    calibration = calibrate_tail(
        scores,
        float(head["target_false_alarm_rate"]),
        overlap,
        tail_quantile=float(evaluation.get("calibration_tail_quantile", TAIL_QUANTILE)),
        confidence=float(evaluation.get("calibration_confidence", TAIL_CONFIDENCE)),
    )
    return {
        **head,
        **calibration.to_dict(),
        "float_anomaly_threshold": head.get("float_anomaly_threshold") or head["anomaly_threshold"],
    }


def residual_scale(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-feature RMS reconstruction error on normal windows (the score's ``error_scale``).

    Floored at one int8 output step (output range / 255) and 0.02 so that a feature the float
    model reconstructs almost perfectly does not turn int8 rounding into false alarms.
    """
    rms = np.sqrt(np.mean((x - reconstruction) ** 2, axis=0))
    step = float(reconstruction.max() - reconstruction.min()) / 255
    return np.maximum(rms, max(step, 0.02)).astype(np.float32)
