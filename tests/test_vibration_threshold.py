"""The few-window threshold: its false-alarm rate on fresh normal windows and what it reports."""

from __future__ import annotations

import numpy as np
import pytest

from training.vibration.threshold import calibrate_tail


@pytest.mark.parametrize("n_windows", [60, 400, 5000])
def test_tail_threshold_keeps_fresh_normal_windows_under_the_target(n_windows):
    """Log-normal scores (what reconstruction errors look like): with 60 windows the 99.5 %
    quantile is just the maximum and lets ~1-2 % through; the tail threshold must not."""
    rng = np.random.default_rng(n_windows)
    fresh = rng.lognormal(0.0, 0.6, 200_000)
    misses = []
    for _ in range(20):
        calibration = rng.lognormal(0.0, 0.6, n_windows)
        result = calibrate_tail(calibration, 0.005)
        misses.append(np.mean(fresh > result.anomaly_threshold))
        assert result.expected_false_alarm_rate <= result.false_alarm_rate_upper_95
        assert result.calibration_windows == n_windows
    assert np.quantile(misses, 0.9) <= 0.01  # 18 of 20 calibrations meet the 1 % limit
    assert np.median(misses) <= 0.005


def test_overlapping_windows_count_as_fewer_and_widen_the_uncertainty():
    rng = np.random.default_rng(1)
    scores = rng.lognormal(0.0, 0.6, 800)
    disjoint = calibrate_tail(scores, 0.005, overlap=1.0)
    overlapping = calibrate_tail(scores, 0.005, overlap=8.0)
    assert overlapping.effective_windows == pytest.approx(100.0)
    assert overlapping.anomaly_threshold > disjoint.anomaly_threshold
    assert overlapping.false_alarm_rate_upper_95 > disjoint.false_alarm_rate_upper_95


def test_rare_normal_knocks_do_not_blind_the_threshold():
    """0.6 % of normal windows are huge (a knock): a floor at the target quantile would sit on
    them; the threshold stays near the bulk's tail and reports the knocks' exceedance rate."""
    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.lognormal(0.0, 0.5, 2000), np.full(12, 400.0)])
    result = calibrate_tail(scores, 0.005)
    assert result.anomaly_threshold < 50
    assert result.expected_false_alarm_rate == pytest.approx(12 / len(scores), abs=1e-6)
