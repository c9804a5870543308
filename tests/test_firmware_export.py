"""The firmware export across the bridge: gcc compiles it, the array is the model, TFLM agrees."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import (
    C_FLAGS,
    CXX_FLAGS,
    TFLM_STUB_DIR,
    bundle_for,
    kws_bundle,
    run_gcc,
    tiny_conv_model,
    tiny_dense_model,
)

from device_sim.bundle import load_bundle
from device_sim.errors import ConfigError
from device_sim.interpreter import Int8Model
from device_sim.model_graph import read_model
from firmware_bridge import arena as arena_module
from firmware_bridge.arena import fits_in_arena, measure_arena
from firmware_bridge.c_array import model_array
from firmware_bridge.export import export_firmware

pytestmark = pytest.mark.needs_tf

WRITER = """\
#include <stdint.h>
#include <stdio.h>
#include "model_data.h"

int main(void)
{
    if (((uintptr_t)g_model) % 16u != 0u) return 3;
    if (fwrite(g_model, 1, g_model_len, stdout) != g_model_len) return 4;
    return 0;
}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """One KWS bundle exported for every target (arena measured once per export)."""
    root = tmp_path_factory.mktemp("export")
    bundle = kws_bundle(root / "bundle")
    folders = {}
    for target in ("c", "cpp", "arduino"):
        export_firmware(load_bundle(bundle.directory), root / target, target=target)
        folders[target] = root / target
    folders["bundle"] = bundle.directory
    return folders


@pytest.mark.parametrize("language", ["c", "cc"])
def test_model_array_written_back_is_byte_identical_and_aligned(tmp_path, language):
    model = tiny_conv_model()
    array = model_array(model, symbol="g_model", source_ext=language)
    (tmp_path / array.header_name).write_text(array.header)
    (tmp_path / array.source_name).write_text(array.source)
    writer = "writer.c" if language == "c" else "writer.cc"
    (tmp_path / writer).write_text(WRITER)
    flags = C_FLAGS if language == "c" else CXX_FLAGS
    run_gcc([*flags, writer, array.source_name, "-o", "writer"], tmp_path, cxx=language == "cc")
    result = subprocess.run(["./writer"], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0, f"array misaligned or short (exit {result.returncode})"
    assert result.stdout == model


def test_every_generated_c_and_cpp_file_compiles_with_warnings_as_errors(exported):
    for target in ("c", "cpp"):
        folder = exported[target]
        for source in sorted(folder.glob("*.c")):
            run_gcc([*C_FLAGS, "-c", source.name, "-o", f"{source.stem}.o"], folder)
        for source in sorted(folder.glob("*.cc")):
            run_gcc(
                [*CXX_FLAGS, f"-I{TFLM_STUB_DIR}", "-c", source.name, "-o", f"{source.stem}.o"],
                folder,
                cxx=True,
            )
        for header in ("model_config.h", "model_data.h", "tinyfleet_frontend.h"):
            (folder / "include_c.c").write_text(f'#include "{header}"\nint tf_unused;\n')
            run_gcc([*C_FLAGS, "-c", "include_c.c", "-o", "include_c.o"], folder)
        assert (folder / "main.o").is_file()


def test_arduino_library_has_the_layout_and_its_sketch_compiles(exported):
    library = exported["arduino"] / "tinyfleet_kws"
    properties = (library / "library.properties").read_text()
    assert "name=tinyfleet_kws" in properties and "includes=tinyfleet_kws.h" in properties
    sketch = library / "examples" / "kws_inference" / "kws_inference.ino"
    assert sketch.is_file()
    src = library / "src"
    assert {"model_data.cpp", "tinyfleet_frontend.c", "tinyfleet_kws.h"} <= {
        p.name for p in src.iterdir()
    }
    run_gcc([*C_FLAGS, "-c", "tinyfleet_frontend.c", "-o", "fe.o"], src)
    run_gcc([*CXX_FLAGS, "-c", "model_data.cpp", "-o", "model.o"], src, cxx=True)
    run_gcc(
        [
            *CXX_FLAGS,
            "-x",
            "c++",
            f"-I{TFLM_STUB_DIR}",
            f"-I{src}",
            "-c",
            str(sketch),
            "-o",
            str(src / "sketch.o"),
        ],
        src,
        cxx=True,
    )


def test_op_resolver_registers_exactly_the_ops_of_the_flatbuffer(exported):
    folder = exported["c"]
    (folder / "resolver_check.cc").write_text(
        """\
#include <cstdio>
#include "op_resolver.h"
int main() {
  TinyfleetOpResolver resolver;
  if (RegisterTinyfleetOps(resolver) != kTfLiteOk) return 1;
  for (unsigned int i = 0; i < resolver.GetRegistrationLength(); ++i)
    std::printf("%s\\n", resolver.RegisteredName(i));
  return 0;
}
"""
    )
    run_gcc([*CXX_FLAGS, f"-I{TFLM_STUB_DIR}", "resolver_check.cc", "-o", "check"], folder, True)
    result = subprocess.run(["./check"], cwd=folder, capture_output=True, text=True, check=True)
    registered = result.stdout.split()
    assert registered == [
        "Conv2D",
        "DepthwiseConv2D",
        "AveragePool2D",
        "Reshape",
        "FullyConnected",
        "Softmax",
    ]
    assert "kTinyfleetOpCount = 6;" in (folder / "op_resolver.h").read_text()


def test_measured_arena_works_in_tflm_and_one_aligned_step_less_does_not(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(tiny_conv_model())
    measured = measure_arena(path)
    assert measured.arena_bytes is not None and measured.arena_bytes % 16 == 0
    assert fits_in_arena(path, measured.arena_bytes)
    assert not fits_in_arena(path, measured.arena_bytes - measured.step_bytes)
    assert measured.margin_bytes >= 16
    # TFLM's own breakdown adds up to the arena it was given.
    assert measured.head_bytes + measured.tail_bytes == measured.arena_bytes
    assert measured.head_bytes >= 10 * 8 * 8  # the largest int8 activation (conv output)


def test_export_records_the_measured_arena_and_macs_in_the_bundle(exported):
    from firmware_bridge.profile import profile_bundle

    bundle = load_bundle(exported["bundle"])
    assert bundle.sizes["arena_bytes"] > 0
    assert bundle.sizes["macs"] == profile_bundle(bundle)["macs"] > 0
    config = (exported["c"] / "model_config.h").read_text()
    expected = bundle.sizes["arena_bytes"] + bundle.sizes["arena_margin_bytes"]
    assert f"#define TINYFLEET_ARENA_BYTES {expected}" in config
    assert bundle.model_sha256 in config


@pytest.mark.parametrize("which", ["conv", "dense"])
def test_tflm_and_litert_int8_outputs_are_identical_on_random_inputs(which):
    """The device simulator runs LiteRT's builtin kernels without the XNNPACK delegate (see
    device_sim/interpreter.py) so that it computes what TFLM on the microcontroller computes:
    identical int8 outputs on every one of 120 random inputs. (With XNNPACK, outputs drifted by up
    to 5 steps on KWS; deeper task models still differ by one step on a few percent of inputs,
    measured in benchmarks/firmware.py.)"""
    from tflite_micro.python.tflite_micro import runtime

    model = tiny_conv_model() if which == "conv" else tiny_dense_model(40, 4)
    litert = Int8Model(model)
    tflm = runtime.Interpreter.from_bytes(model, arena_size=64 * 1024)
    rng = np.random.default_rng(7)
    shape = litert.input_spec.shape
    differing = 0
    for _ in range(120):
        q = rng.integers(-128, 128, size=shape, dtype=np.int8)
        tflm.set_input(q, 0)
        tflm.invoke()
        differing += int(np.any(tflm.get_output(0) != litert.invoke_quantized(q)))
    assert differing == 0


def test_export_without_tflm_says_arena_not_measured_instead_of_guessing(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(arena_module, "tflm_available", lambda: False)
    bundle = kws_bundle(tmp_path / "bundle")
    with caplog.at_level(logging.WARNING):
        summary = export_firmware(bundle, tmp_path / "fw")
    assert summary["arena_bytes"] is None and summary["ram_bytes"] is None
    assert "not measured" in caplog.text
    assert load_bundle(bundle.directory).sizes["arena_bytes"] is None
    folder = tmp_path / "fw"
    (folder / "uses_config.c").write_text('#include "model_config.h"\nint tf_unused;\n')
    with pytest.raises(AssertionError, match="not measured"):
        run_gcc([*C_FLAGS, "-c", "uses_config.c"], folder)
    run_gcc([*C_FLAGS, "-DTINYFLEET_ARENA_BYTES=8192", "-c", "uses_config.c"], folder)


def test_export_of_a_kind_without_c_front_end_still_writes_the_model(tmp_path, caplog):
    bundle = bundle_for(
        tmp_path / "bundle",
        tiny_conv_model(),
        task="kws",
        feature_config={"kind": "spectrogram_v9"},
        head={"labels": ["a", "b", "c", "d"]},
    )
    with caplog.at_level(logging.WARNING):
        summary = export_firmware(bundle, tmp_path / "fw")
    assert "no C front end" in caplog.text
    assert summary["frontend_kind"] is None
    assert (tmp_path / "fw" / "model_data.c").is_file()
    assert not (tmp_path / "fw" / "main.cc").exists()


def test_export_rejects_an_unknown_target(tmp_path):
    bundle = kws_bundle(tmp_path / "bundle")
    with pytest.raises(ConfigError, match="c, cpp, arduino"):
        export_firmware(bundle, tmp_path / "fw", target="rust")


def test_flatbuffer_reader_sees_the_int8_weights_litert_runs():
    graph = read_model(tiny_conv_model())
    weights = [t for t in graph.constant_tensors() if t.dtype == "int8"]
    assert weights and all(t.data.shape == t.shape for t in weights)
    assert graph.tensors[graph.inputs[0]].shape == (1, 10, 8, 1)


def test_main_refuses_to_compile_when_front_end_and_model_disagree(tmp_path):
    bundle = bundle_for(
        tmp_path / "bundle",
        tiny_conv_model((10, 8, 1), 4),  # 80 inputs
        task="kws",
        feature_config={"kind": "log_mel", "clip_ms": 200, "n_mels": 8},  # 9 x 8 = 72 features
        head={"labels": ["yes", "no", "_silence_", "_unknown_"]},
    )
    export_firmware(bundle, tmp_path / "fw")
    with pytest.raises(AssertionError, match="disagree on the feature count"):
        run_gcc([*CXX_FLAGS, f"-I{TFLM_STUB_DIR}", "-c", "main.cc"], tmp_path / "fw", cxx=True)


def _vibration_bundle(directory: Path):
    from device_sim.features.vibration import VibrationFeatureConfig

    config = VibrationFeatureConfig()
    n = config.n_features
    return bundle_for(
        directory,
        tiny_dense_model(n, n),  # an autoencoder's shape: output = input
        task="vibration",
        feature_config=config.to_dict(),
        head={"anomaly_threshold": 0.75, "error_scale": [1.0] * n, "alarm_k": 3, "alarm_n": 5},
    )


def _air_quality_bundle(directory: Path):
    from device_sim.features.air_quality import AirQualityWindowConfig

    config = AirQualityWindowConfig(
        inputs=("PT08.S1(CO)", "T", "hour"),
        transforms=("log", "linear", "hour"),
        mean=(6.9, 18.0, 0.0),
        std=(0.3, 8.0, 1.0),
        window_rows=4,
    )
    target = {"unit": "mg/m³", "log_mean": 0.26, "log_std": 0.62, "offset": 0.14}
    return bundle_for(
        directory,
        tiny_dense_model(4 * config.features_per_row, 2),
        task="air_quality",
        feature_config=config.to_dict(),
        head={"targets": [{"name": "CO(GT)", **target}, {"name": "C6H6(GT)", **target}]},
    )


@pytest.mark.parametrize("task", ["vibration", "air_quality"])
def test_vibration_and_air_quality_firmware_compiles_with_its_task_report(tmp_path, task):
    make = _vibration_bundle if task == "vibration" else _air_quality_bundle
    summary = export_firmware(make(tmp_path / "bundle"), tmp_path / "fw")
    folder = tmp_path / "fw"
    assert summary["frontend_kind"] in ("vibration_bands", "air_quality_window")
    run_gcc([*C_FLAGS, "-c", "tinyfleet_frontend.c", "-o", "fe.o"], folder)
    run_gcc([*C_FLAGS, "-c", "model_data.c", "-o", "model.o"], folder)
    run_gcc([*CXX_FLAGS, f"-I{TFLM_STUB_DIR}", "-c", "main.cc", "-o", "main.o"], folder, cxx=True)
    main = (folder / "main.cc").read_text()
    expected = "anomaly score" if task == "vibration" else "kLogMean"
    assert expected in main


def test_every_resolver_method_exists_in_the_tflm_api_the_stub_mirrors():
    import re

    from firmware_bridge.op_resolver import TFLM_ADD_METHODS

    stub = (TFLM_STUB_DIR / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    declared = {f"Add{name}" for name in re.findall(r"X\((\w+)\)", stub)}
    assert set(TFLM_ADD_METHODS.values()) <= declared
