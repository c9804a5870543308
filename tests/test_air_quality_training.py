"""One small real training run per data path (a UCI-format file, the simulator), each to a bundle
that then streams on the device side. Seconds, not minutes: few epochs, few days."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_sim.bundle import load_bundle
from device_sim.device import ModelCache, build_pipeline
from device_sim.errors import DataError
from device_sim.features import frontend_from_dict
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.uci_air_csv import load_csv, write_uci_csv
from device_sim.tasks import runtime_for
from tinyfleet.cli import main as tinyfleet

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


@pytest.fixture(scope="module")
def uci_file(tmp_path_factory):
    """40 simulated days in the UCI format, with one malformed line among them."""
    path = tmp_path_factory.mktemp("aq") / "AirQualityUCI.csv"
    write_uci_csv(simulate(24 * 40, seed=5), path)
    lines = path.read_text().splitlines()
    lines.insert(100, "20/03/2004;09.00.00;not;a;row;;")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_build_from_a_uci_file_reports_int8_beside_baselines_on_the_same_rows(
    uci_file, tmp_path, capsys
):
    out = tmp_path / "bundle"
    status = tinyfleet(
        ["-q", "build", "air_quality", "--data", str(uci_file), "--out", str(out), "--no-export"]
        + ["--json"]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["targets"]) == {"CO(GT)", "NO2(GT)", "C6H6(GT)"}
    split = report["split"]
    assert split["method"] == "time" and split["data"]["malformed_rows"] == 1
    bundle = load_bundle(out)
    assert bundle.sizes["tflite_bytes"] <= 8 * 1024

    with np.load(out / "evaluation.npz") as evaluation:
        end_row, reference = evaluation["end_row"], evaluation["reference"]
        baselines = {
            key[len("baseline_") :]: evaluation[key]
            for key in evaluation.files
            if key.startswith("baseline_")
        }
    assert len(baselines) == 6  # linear, gbm, hist_gbm × hour's own / lagged + hour of day
    # time split: every evaluated window ends after the last training row
    assert end_row.min() >= split["split_row"] and np.all(np.diff(end_row) > 0)
    assert len(end_row) == split["n_test"]
    for j, name in enumerate(["CO(GT)", "NO2(GT)", "C6H6(GT)"]):
        entry = report["targets"][name]
        present = np.isfinite(reference[:, j])
        # the baselines were scored on exactly the rows the int8 model was scored on
        assert entry["n_test"] == int(present.sum())
        for baseline, pred in baselines.items():
            assert np.isfinite(pred[present, j]).all()
            assert entry["baselines_mae"][baseline] == pytest.approx(
                np.mean(np.abs(pred[present, j] - reference[present, j]))
            )
        best = min(entry["baselines_mae"].values())
        assert entry["beats_best_baseline"] == (entry["mae"] < best)
        assert entry["prior_only_mae"] > 0
        assert entry["mae"] > 0 and np.isfinite(entry["r2"])
        assert report["float"]["targets"][name]["baseline_gbm_mae"] == entry["baseline_gbm_mae"]
    assert 0.0 <= report["band_accuracy"] <= 1.0

    # normalisation statistics come from the training part only
    table = load_csv(uci_file)
    s2 = table.column("PT08.S2(NMHC)")
    config = bundle.feature_config
    i = config["inputs"].index("PT08.S2(NMHC)")
    train_part = s2[: split["split_row"]]
    assert config["mean"][i] == pytest.approx(np.nanmean(np.log(train_part)))
    assert config["mean"][i] != pytest.approx(np.nanmean(np.log(s2)), abs=1e-6)

    # the bundle streams on the device side, replaying the same file
    pipeline = build_pipeline(bundle, cache=ModelCache(), source_kind="file", path=uci_file)
    valid = invalid = 0
    while (window := pipeline.next_window()) is not None:
        reason = pipeline.runtime.check_window(window)
        if reason is not None:
            invalid += 1
            continue
        features = pipeline.frontend(window)
        result = pipeline.runtime.process(pipeline.model.predict(features), features)
        last_features, last_window = features, window
        valid += 1
    assert valid > 600 and invalid > 0
    assert result.fields["estimates"]["CO"]["unit"] == "mg/m³"
    assert result.fields["band"] in bundle.head["bands"]["names"]

    # months later the sensors have drifted: `calibrate` fits a correction from reference hours
    table = load_csv(uci_file)
    for name, factor in (("PT08.S2(NMHC)", 1.25), ("PT08.S1(CO)", 0.85)):
        table.values[:, table.columns.index(name)] *= factor
    drifted = write_uci_csv(table, tmp_path / "drifted.csv")
    calibrated_dir = tmp_path / "calibrated"
    status = tinyfleet(
        ["-q", "calibrate", "--bundle", str(out), "--data", str(drifted), "--json"]
        + ["--out", str(calibrated_dir)]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    calibrated = load_bundle(calibrated_dir)  # verifies the hash: a valid new bundle
    assert calibrated.version != bundle.version and report["calibrated_from"] == bundle.version
    assert calibrated.model_sha256 == bundle.model_sha256  # the int8 model is untouched
    for key in ("CO", "C6H6"):
        entry = report["targets"][key]
        assert entry["reference_hours"] > 100
        assert entry["mae_after"] < 0.8 * entry["mae_before"], (key, entry)
    output = pipeline.model.predict(last_features)
    before = runtime_for(bundle).process(output, last_features).fields["estimates"]["CO"]["value"]
    # calibrate may move a sensor's baseline (front end) as well as the output correction
    calibrated_features = frontend_from_dict(calibrated.feature_config)(last_window)
    calibrated_output = pipeline.model.predict(calibrated_features)
    after = runtime_for(calibrated).process(calibrated_output, calibrated_features)
    after = after.fields["estimates"]["CO"]["value"]
    assert after != before


def test_simulator_build_streams_from_the_simulated_station(tmp_path):
    from quantize.stage import quantize_trained
    from training.air_quality import train
    from training.stage import TrainOptions

    options = TrainOptions(seed=2, hyperparameters=(("sim_days", 30), ("epochs", 3)))
    trained = train(options)
    assert "explanation" in trained.extra
    importance = trained.extra["explanation"]["per_target"]["NO2(GT)"]
    assert set(importance) == set(trained.feature_config.inputs)
    bundle = quantize_trained(trained, tmp_path / "bundle")
    assert bundle.head["explain"]["in_payload"] is True
    pipeline = build_pipeline(bundle, cache=ModelCache(), source_kind="sim", seed=2)
    fields = []
    for _ in range(48):
        window = pipeline.next_window()
        if pipeline.runtime.check_window(window) is None:
            features = pipeline.frontend(window)
            fields.append(pipeline.runtime.process(pipeline.model.predict(features), features))
    assert len(fields) > 24
    estimates = np.array(
        [[f.fields["estimates"][k]["value"] for k in ("CO", "NO2")] for f in fields]
    )
    assert np.all(estimates >= 0) and np.ptp(estimates[:, 1]) > 0
    assert set(fields[-1].fields["explain"]) == {"CO", "NO2", "C6H6"}


def test_a_csv_without_any_reference_column_cannot_train(tmp_path):
    from training.air_quality import train
    from training.stage import TrainOptions

    table = simulate(24 * 20, seed=1)
    path = tmp_path / "sensors_only.csv"
    names = ["PT08.S1(CO)", "T"]
    rows = ["timestamp," + ",".join(names)]
    for stamp, values in zip(table.timestamps, table.matrix(names), strict=True):
        moment = np.datetime64(int(stamp), "s").astype(str)
        rows.append(moment + "," + ",".join("" if np.isnan(v) else f"{v:.2f}" for v in values))
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="needs reference measurements"):
        train(TrainOptions(data=path))
