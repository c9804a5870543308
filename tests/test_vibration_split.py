"""Time split of normal recordings and threshold calibration (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_sim.sources.vibration_files import Recording
from training.vibration import split_by_time, split_windows, window_starts
from training.vibration.threshold import calibrate_threshold


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(100, 200_000),
    window=st.integers(16, 4096),
    hop_fraction=st.floats(0.1, 1.0),
)
def test_no_window_straddles_a_split_boundary(n, window, hop_fraction):
    hop = max(1, int(window * hop_fraction))
    parts = split_by_time(n)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    for start, stop in parts:
        starts = window_starts(start, stop, window, hop)
        assert np.all(starts >= start)
        assert np.all(starts + window <= stop)


def test_train_calibration_and_evaluation_windows_are_disjoint_and_in_time_order():
    rate, window, hop = 100.0, 64, 32
    n = 10_000
    # each sample holds its own index, so a window tells which samples it covers
    samples = np.arange(n, dtype=np.float32)[:, None].repeat(3, axis=1)
    fault = Recording(np.full((500, 3), -1.0, np.float32), rate, "f", label="outer_race")
    splits = split_windows([Recording(samples, rate, "n"), fault], window, hop)
    covered = {}
    for name in ("train", "calibration", "evaluation"):
        windows = np.concatenate(getattr(splits, name))
        normal = windows[windows[:, 0, 0] >= 0]
        covered[name] = (normal[:, :, 0].min(), normal[:, :, 0].max())
        assert np.all(np.diff(normal[:, :, 0], axis=1) == 1)  # contiguous samples, no seam
    assert covered["train"][1] < covered["calibration"][0]
    assert covered["calibration"][1] < covered["evaluation"][0]
    assert covered["train"][1] < 0.55 * n <= covered["calibration"][0]
    classes = np.concatenate(splits.eval_class)
    assert splits.classes == ["normal", "outer_race"]
    assert (classes == 1).sum() == len(np.arange(0, 500 - window + 1, hop))


def test_too_little_normal_data_is_a_clear_error():
    from device_sim.errors import DataError

    short = Recording(np.zeros((2000, 3), np.float32), 6400.0, "short")
    with pytest.raises(DataError, match="record more normal data"):
        split_windows([short], 4096, 2048)


@pytest.mark.parametrize("target", [0.01, 0.05])
def test_threshold_calibrated_on_held_out_normal_meets_the_target_false_alarm_rate(target):
    rng = np.random.default_rng(0)
    calibration = rng.gamma(2.0, 0.5, 5000)
    held_out = rng.gamma(2.0, 0.5, 200_000)  # fresh normal windows from the same distribution
    threshold = calibrate_threshold(calibration, target)
    assert np.mean(calibration > threshold) <= target
    assert np.mean(held_out > threshold) == pytest.approx(target, rel=0.25)


def test_augmented_windows_stretch_in_time_and_stay_inside_their_part():
    from training.vibration import augment_windows

    window, stretch, rate = 256, 0.05, 1000.0
    t = np.arange(int(window * (1 + stretch)) + 1) / rate
    longer = [np.sin(2 * np.pi * 100.0 * t)[None, :, None].repeat(4, axis=0).astype(np.float32)]
    rng = np.random.default_rng(0)
    (out,) = augment_windows(longer, window, 1, rng, stretch=stretch, gain_db=0.0)
    assert out.shape == (4, window, 1)
    spectrum = np.abs(np.fft.rfft(out[:, :, 0] * np.hanning(window), axis=1))
    peaks = spectrum.argmax(axis=1) * rate / window
    # a stretch by f moves the 100 Hz tone to 100 f Hz: within the jitter, not beyond it
    assert np.all(np.abs(peaks - 100.0) <= 100.0 * stretch + rate / window)
    assert np.isfinite(out).all()
