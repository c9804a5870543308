"""Device side of the vibration task: debounced alarms, invalid windows, explanations, sources."""

from __future__ import annotations

import io

import numpy as np
import pytest

from device_sim.errors import ConfigError, DataError
from device_sim.features import frontend_from_dict
from device_sim.features.vibration import VibrationFeatureConfig, validate_window
from device_sim.sources import open_source
from device_sim.sources.vibration import StdinSource, default_fault
from device_sim.sources.vibration_sim import simulate_recording
from device_sim.tasks import runtime_for
from tests.vibration_fixtures import runtime_bundle

N_FEATURES = VibrationFeatureConfig().n_features


def run(runtime, errors: list[float]):
    """Feed windows whose anomaly score is exactly ``e`` (features 0, output ±sqrt(e))."""
    results = []
    for e in errors:
        output = np.full(N_FEATURES, np.sqrt(e), dtype=np.float32)
        results.append(runtime.process(output, np.zeros(N_FEATURES, np.float32)))
    return results


def test_alarm_is_raised_after_k_of_n_anomalous_windows_and_cleared_after_n_quiet_ones(tmp_path):
    runtime = runtime_for(runtime_bundle(tmp_path, threshold=1.0, alarm_k=3, alarm_n=5))
    # two isolated anomalies: no alarm
    results = run(runtime, [2, 0.1, 0.1, 2, 0.1, 0.1, 0.1, 0.1])
    assert [r.fields["anomaly"] for r in results[:4]] == [True, False, False, True]
    assert all(r.event is None for r in results)
    # the third anomaly within 5 windows raises it, once
    results = run(runtime, [2, 2, 2, 2])
    events = [r.event for r in results if r.event]
    assert len(events) == 1 and events[0]["state"] == "raised"
    assert results[1].fields["alarm"] is False and results[2].fields["alarm"] is True
    assert results[2].event["anomalous_windows"] == "3 of last 5"
    # one quiet window is not enough to clear (hysteresis); five are
    results = run(runtime, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    states = [(i, r.event["state"]) for i, r in enumerate(results) if r.event]
    assert states == [(4, "cleared")]
    assert results[-1].fields["alarm"] is False


def test_invalid_windows_are_flagged_not_inferred_and_do_not_count_towards_alarms(tmp_path):
    runtime = runtime_for(runtime_bundle(tmp_path, threshold=1.0, alarm_k=2, alarm_n=3))
    window = simulate_recording(0.7, seed=1)[:4096].copy()
    assert runtime.check_window(window) is None
    nan_window = window.copy()
    nan_window[100, 1] = np.nan
    assert "non-finite" in runtime.check_window(nan_window)
    clipped = window.copy()
    clipped[200:205, 0] = 16.0
    assert "clipped" in runtime.check_window(clipped)
    flat = window.copy()
    flat[:, 2] = 0.25
    assert "flat" in runtime.check_window(flat)
    result = runtime.invalid_result(runtime.check_window(clipped))
    assert result.fields["valid"] is False and "clipped" in result.fields["reason"]
    # non-finite features are refused too, without touching the history
    bad = runtime.process(np.zeros(N_FEATURES), np.full(N_FEATURES, np.inf))
    assert bad.fields == {**bad.fields, "valid": False, "reason": "non-finite features"}
    results = run(runtime, [2])
    runtime.invalid_result("clipped")
    results += run(runtime, [2])
    assert results[-1].event and results[-1].event["state"] == "raised"


def test_explanation_names_the_features_with_their_frequency_ranges(tmp_path):
    runtime = runtime_for(runtime_bundle(tmp_path))
    names = runtime.feature_names
    features = np.zeros(N_FEATURES, np.float32)
    y_hf = names.index("y hf_kurtosis")
    band = VibrationFeatureConfig().features_per_axis + 3  # y axis, band 3
    features[y_hf], features[band] = 4.0, -2.0
    result = runtime.process(np.zeros(N_FEATURES, np.float32), features)
    top = result.fields["top_features"]
    assert top[0]["feature"] == "y hf_kurtosis" and top[0]["hz"] == [1000.0, 3200.0]
    assert top[0]["direction"] == "high" and top[0]["share"] == pytest.approx(0.8)
    assert top[1]["feature"] == names[band] and top[1]["direction"] == "low"
    low, high = top[1]["hz"]
    assert 10 <= low < high <= 3200


def test_order_features_are_explained_at_this_windows_shaft_speed(tmp_path):
    runtime = runtime_for(runtime_bundle(tmp_path, identity_normalization=True))
    names = runtime.feature_names
    features = np.zeros(N_FEATURES, np.float32)
    features[-1] = np.log10(30.0)  # shaft speed 30 Hz (1800 rpm)
    output = features.copy()
    two_x = names.index("z 2x shaft")
    features[two_x] += 1.0  # 2x ten times stronger than expected: misalignment
    result = runtime.process(output, features)
    assert result.fields["shaft_speed_hz"] == pytest.approx(30.0, abs=0.01)
    top = result.fields["top_features"][0]
    assert top["feature"] == "z 2x shaft" and top["direction"] == "high"
    low, high = top["hz"]
    assert low < 60.0 < high and high - low < 10  # around 2 x 30 Hz, one Hann main lobe wide


def test_validate_window_accepts_real_signals_up_to_just_below_full_scale():
    window = np.random.default_rng(0).normal(0, 1, (4096, 3))
    window[0, 0] = 15.9
    assert validate_window(window, 16.0) is None
    assert validate_window(np.zeros((0, 3))) == "empty window"


def test_sim_source_delivers_bundle_shaped_chunks_and_develops_its_scheduled_fault(tmp_path):
    bundle = runtime_bundle(tmp_path)
    source = open_source(bundle, "sim", seed=3)
    assert source.sample_rate == 6400.0
    chunk = source.read(2048)
    assert chunk.shape == (2048, 3) and chunk.dtype == np.float32
    assert source.machine["fault"] == default_fault(3).kind == "outer_race"
    again = open_source(bundle, "sim", seed=3).read(2048)
    assert np.array_equal(chunk, again)
    frontend = frontend_from_dict(bundle.feature_config)
    assert frontend(source.read(4096)).shape == (N_FEATURES,)


def test_file_source_resamples_to_the_bundle_rate_and_ends(tmp_path):
    bundle = runtime_bundle(tmp_path)
    path = tmp_path / "rec.npy"
    np.save(path, simulate_recording(1.0, seed=2))
    source = open_source(bundle, "file", path=path)
    chunks = []
    while (chunk := source.read(1000)) is not None:
        chunks.append(chunk)
    assert sum(len(c) for c in chunks) == 6400
    one_axis = tmp_path / "one.npy"
    np.save(one_axis, np.zeros(6400))
    with pytest.raises(DataError, match="expects 3"):
        open_source(bundle, "file", path=one_axis)
    with pytest.raises(ConfigError, match="--path"):
        open_source(bundle, "file")
    with pytest.raises(ConfigError, match="unknown vibration source"):
        open_source(bundle, "mic")


def test_stdin_source_reads_csv_lines_and_rejects_malformed_ones():
    stream = io.StringIO("ax,ay,az\n0.1,0.2,0.3\n0.4 0.5 0.6\n\n0.7,0.8,0.9\n")
    source = StdinSource(6400, 3, stream)
    np.testing.assert_allclose(source.read(2), [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], rtol=1e-6)
    assert source.read(5).shape == (1, 3)
    assert source.read(5) is None
    with pytest.raises(DataError, match="line 2"):
        StdinSource(6400, 3, io.StringIO("0.1,0.2,0.3\n0.1,0.2\n")).read(5)
