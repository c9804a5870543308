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
    from tinyfleet.commands.stages import build
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
