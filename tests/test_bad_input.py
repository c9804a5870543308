"""Bad input end to end: each gets a clear message and exit status 2 (CLI) or a flagged window
(device), and nothing already computed is lost. Complements the per-area tests (WAV formats in
test_kws_wav, UCI rows in test_air_quality_loader, malformed MQTT payloads in test_mqtt_payload,
broker outages in test_fleet_reliability)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bundle_fixtures import tiny_int8_model, write_tiny_bundle

from device_sim.bundle import Bundle, QuantizedTensor
from device_sim.tasks.kws import TaskRuntime as KwsRuntime
from tinyfleet.cli import main

LABELS = [
    "_silence_",
    "_unknown_",
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
]


def _kws_runtime(tmp_path: Path) -> KwsRuntime:
    spec = QuantizedTensor((1, 12), "int8", 1 / 256, -128)
    return KwsRuntime(
        Bundle(
            directory=tmp_path,
            task="kws",
            name="kws-test",
            version="1",
            input=spec,
            output=spec,
            feature_config={"sample_rate": 16000, "clip_ms": 1000},
            head={"labels": LABELS},
        )
    )


def test_kws_windows_with_nan_or_heavy_clipping_are_flagged_not_inferred(tmp_path: Path) -> None:
    runtime = _kws_runtime(tmp_path)
    speech = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    assert runtime.check_window(speech) is None

    loud_peaks = speech.copy()
    loud_peaks[:50] = 1.0  # a few clipped peaks in loud speech are normal
    assert runtime.check_window(loud_peaks) is None

    saturated = np.clip(speech * 20, -1, 1)
    assert "clipped" in runtime.check_window(saturated)

    broken = speech.copy()
    broken[100] = np.nan
    broken[200] = np.inf
    assert runtime.check_window(broken) == "2 non-finite sample(s) (NaN/Inf)"

    before = runtime.time_ms
    flagged = runtime.invalid_result("2 non-finite sample(s) (NaN/Inf)")
    assert flagged.fields["valid"] is False and flagged.event is None
    assert runtime.time_ms == before + runtime.hop_ms  # stream time keeps running


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return tiny_int8_model()


@pytest.mark.parametrize("command", ["profile", "export", "evaluate"])
def test_a_corrupt_model_makes_every_bundle_command_exit_2_with_the_reason(
    command: str, tmp_path: Path, model_bytes: bytes, capsys
) -> None:
    bundle_dir = tmp_path / "bundle"
    write_tiny_bundle(bundle_dir, model_bytes)
    model = bundle_dir / "model.tflite"
    model.write_bytes(model.read_bytes()[: len(model_bytes) // 2])  # truncated copy
    before = (bundle_dir / "bundle.json").read_text()
    status = main([command, "--bundle", str(bundle_dir), "--json"])
    captured = capsys.readouterr()
    assert status == 2
    assert "does not match its bundle" in captured.err
    assert captured.out == ""
    assert (bundle_dir / "bundle.json").read_text() == before  # nothing rewritten


def test_device_refuses_a_bundle_of_unknown_schema_before_connecting(
    tmp_path: Path, model_bytes: bytes, capsys
) -> None:
    bundle_dir = tmp_path / "bundle"
    write_tiny_bundle(bundle_dir, model_bytes)
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    manifest["schema_version"] = 99
    (bundle_dir / "bundle.json").write_text(json.dumps(manifest))
    status = main(["device", "--bundle", str(bundle_dir), "--broker", "mqtt://127.0.0.1:9"])
    assert status == 2
    assert "schema version 99" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["kws", "vibration"])
def test_an_empty_data_folder_exits_2_and_says_what_to_pass(
    task: str, tmp_path: Path, capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status = main(["build", task, "--data", str(empty), "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert status == 2
    assert str(empty) in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out" / "bundle.json").exists()


def test_a_csv_without_usable_rows_exits_2(tmp_path: Path, capsys) -> None:
    garbage = tmp_path / "AirQualityUCI.csv"
    garbage.write_text("this is;not;a sensor log\n1;2\n\n")
    status = main(["build", "air_quality", "--data", str(garbage), "--out", str(tmp_path / "o")])
    assert status == 2
    assert "AirQualityUCI.csv" in capsys.readouterr().err


def test_mic_is_refused_for_a_bundle_that_does_not_take_audio(
    tmp_path: Path, model_bytes: bytes, capsys
) -> None:
    bundle_dir = tmp_path / "bundle"
    bundle = write_tiny_bundle(bundle_dir, model_bytes)
    manifest = json.loads(bundle.manifest_path.read_text())
    manifest["task"] = "air_quality"
    bundle.manifest_path.write_text(json.dumps(manifest))
    status = main(
        ["device", "--bundle", str(bundle_dir), "--mic", "--broker", "mqtt://127.0.0.1:9"]
    )
    assert status == 2
    assert "--mic feeds audio" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["kws", "vibration", "air_quality"])
def test_a_file_source_without_a_path_names_the_flag_that_exists(task: str, tmp_path: Path) -> None:
    """The flag is ``--path`` (``tinyfleet device``); the air_quality message once said ``--input``."""
    from device_sim.errors import ConfigError
    from device_sim.sources import open_source

    spec = QuantizedTensor((1, 12), "int8", 1 / 256, -128)
    bundle = Bundle(
        directory=tmp_path,
        task=task,
        name=f"{task}-test",
        version="1",
        input=spec,
        output=spec,
        feature_config={"sample_rate": 100, "axes": 3},
        head={},
    )
    with pytest.raises(ConfigError) as refused:
        open_source(bundle, "file")
    assert "--path" in str(refused.value) and "--input" not in str(refused.value)
