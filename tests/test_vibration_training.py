"""One real quick-preset training run on the simulator → int8 bundle, and a folder-data run.

Real parts throughout: tf_keras training with pruning, the TFLite int8 converter, LiteRT inference.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tf_keras")

from device_sim.bundle import load_bundle  # noqa: E402
from device_sim.errors import DataError  # noqa: E402
from device_sim.sources.vibration_sim import simulate_recording  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


@pytest.fixture(scope="module")
def sim_bundle(tmp_path_factory):
    from pipeline.build import build
    from training.stage import TrainOptions

    out = tmp_path_factory.mktemp("vibration-bundle")
    return build("vibration", TrainOptions(preset="quick", seed=0), out, export=False)


def test_quick_build_detects_simulated_faults_with_int8_close_to_float(sim_bundle):
    bundle = load_bundle(sim_bundle.directory)
    int8, float_ = bundle.metrics["int8"], bundle.metrics["float"]
    assert list(int8)[0] == "auc"
    assert int8["auc"] >= 0.95
    assert abs(int8["auc"] - float_["auc"]) <= 0.01
    assert int8["false_alarm_rate"] <= 0.05
    assert set(int8["per_class"]) == {
        "imbalance",
        "misalignment",
        "looseness",
        "outer_race",
        "inner_race",
        "ball",
    }
    assert int8["baseline_rms_auc"] < int8["auc"]
    assert bundle.sizes["tflite_bytes"] <= 16 * 1024
    assert bundle.head["anomaly_threshold"] > 0
    assert bundle.feature_config["kind"] == "vibration_bands"
    assert len(bundle.feature_config["mean"]) == bundle.input.shape[1]


def test_evaluate_scores_fresh_simulated_data_and_writes_a_roc_plot(sim_bundle):
    from training.stage import TrainOptions
    from training.vibration import evaluate

    result = evaluate(sim_bundle, None, TrainOptions(seed=7))
    assert result["auc"] >= 0.9  # unseen seed: other machines, schedules and fault recordings
    roc = sim_bundle.directory / "roc.png"
    assert result["roc_png"] == str(roc)
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_on_a_folder_of_recordings_reports_its_own_classes(tmp_path):
    from training.stage import TrainOptions
    from training.vibration import train

    (tmp_path / "normal").mkdir()
    (tmp_path / "bearing_fault").mkdir()
    for i in range(2):
        np.save(tmp_path / "normal" / f"n{i}.npy", simulate_recording(25.0, seed=100 + i))
    faulty = simulate_recording(5.0, kind="outer_race", severity=1.0, seed=200)
    np.save(tmp_path / "bearing_fault" / "f.npy", faulty)
    options = TrainOptions(
        data=tmp_path, sample_rate=6400.0, hyperparameters=(("epochs", 5), ("sparsity", 0.3))
    )
    trained = train(options)
    assert trained.head["classes"] == ["normal", "bearing_fault"]
    assert set(trained.metrics_float["per_class"]) == {"bearing_fault"}
    assert trained.metrics_float["auc"] > 0.9
    assert trained.provenance["windows"]["train"] > trained.provenance["windows"]["calibration"]
    (tmp_path / "normal" / "n0.npy").unlink()
    (tmp_path / "normal" / "n1.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="n1.npy"):
        train(options)


def impacts(rate: float, seconds: float, seed: int, fault_hz: float | None = None) -> np.ndarray:
    """A single-axis machine at ``rate`` Hz: shaft tone, broadband noise and, for a bearing fault,
    a ``fault_hz`` train of decaying 3 kHz rings (what a spalled race does)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.05 * np.sin(2 * np.pi * 25 * t) + 0.01 * rng.standard_normal(len(t))
    if fault_hz:
        ring = np.exp(-np.arange(int(0.004 * rate)) / (0.0007 * rate))
        ring *= np.sin(2 * np.pi * 3000 * np.arange(len(ring)) / rate)
        pulses = np.zeros(len(t))
        pulses[(np.arange(0, seconds, 1 / fault_hz) * rate).astype(int)] = 0.3
        x += np.convolve(pulses, ring)[: len(t)]
    return x[:, None]


def test_five_seconds_of_normal_data_per_condition_build_a_calibrated_int8_bundle(tmp_path):
    """A short-record rig: 5 s of healthy data at each of two speeds (one folder per condition,
    one piece each), a .mat file with the rate inside; the build must not refuse and must
    record the threshold's expected false-alarm rate and its uncertainty."""
    from scipy import io as scipy_io

    from pipeline.build import build
    from training.stage import TrainOptions

    rate = 12000.0
    for i, speed in enumerate(("1730rpm", "1797rpm")):
        (tmp_path / "normal" / speed).mkdir(parents=True)
        record = impacts(rate, 5.0, seed=i) * (1.0 + 0.3 * i)
        scipy_io.savemat(
            tmp_path / "normal" / speed / "rec.mat", {"Data": record, "SampleFrequency": rate}
        )
    (tmp_path / "outer_race").mkdir()
    np.save(tmp_path / "outer_race" / "o.npy", impacts(rate, 2.0, seed=9, fault_hz=107.0))
    options = TrainOptions(data=tmp_path, sample_rate=rate, hyperparameters=(("epochs", 15),))
    bundle = build("vibration", options, tmp_path / "bundle", export=False)
    loaded = load_bundle(bundle.directory)
    head, int8 = loaded.head, loaded.metrics["int8"]
    assert loaded.feature_config["sample_rate"] == rate  # no resampling below the sensor's rate
    assert loaded.feature_config["window_samples"] == 1024  # ~0.1 s at 12 kHz
    assert head["calibration_windows"] >= 60  # overlapping windows, later half of 2 x 1 s
    assert head["expected_false_alarm_rate"] == pytest.approx(0.005, abs=1e-6)  # designed for
    # 2 x 1 s of calibration cannot demonstrate 0.5 %; the model-free bound must say so
    assert 0.02 < head["false_alarm_rate_upper_95"] < 0.5
    assert int8["auc"] >= 0.99
    assert int8["per_class"]["outer_race"] >= 0.9
    assert set(int8["per_condition"]) >= {"normal/1730rpm", "normal/1797rpm", "outer_race/o"}
    assert int8["baseline_kmeans_auc"] is not None and "baseline_kurtosis_auc" in int8
