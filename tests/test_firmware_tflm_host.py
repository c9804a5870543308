"""The exported projects built with their own Makefile against the real TFLM sources, run natively.

What an embedded developer does first — ``make TFLM_ROOT=…`` as the exported README says — on the
host: TFLM's core and the model's kernels compiled once (cached under ~/.cache/tinyfleet), the
exported files with ``-Wall -Wextra -Werror`` and TFLM's warning set, the arena from
model_config.h. The self-test feeds the application real sensor data (Speech Commands audio,
UESTC bearing recordings, a simulated station) through its C front end, quantisation and TFLM; its
int8 outputs must be *identical* to the Python interpreters' on the same int8 inputs, and those
inputs equal to the Python front end's within one quantisation step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import (
    air_quality_bundle,
    assert_identical_to_python,
    bearing_stream,
    kws_mfcc_bundle,
    speech_stream,
    vibration_bundle,
)

from device_sim.bundle import Bundle, load_bundle
from device_sim.features import feature_config_from_dict
from firmware_bridge.build import THIRD_PARTY_ENV, build, missing_tools, run_selftest
from firmware_bridge.build import third_party_dir as find_third_party
from firmware_bridge.export import export_firmware
from firmware_bridge.selftest import SelftestResult

pytestmark = [
    pytest.mark.needs_tf,
    pytest.mark.skipif(
        find_third_party() is None,
        reason=f"no TFLM sources: set {THIRD_PARTY_ENV} or put shared/third_party beside the repo",
    ),
    pytest.mark.skipif(missing_tools("host") is not None, reason=str(missing_tools("host"))),
]


def run_on_host(bundle: Bundle, values: np.ndarray, folder: Path) -> list[SelftestResult]:
    export_firmware(bundle, folder, selftest_values=values)
    program = build(folder, "host", app=f"tinyfleet_{bundle.task}", selftest=True)
    return run_selftest(program)


def assert_inputs_match_front_end(bundle: Bundle, results, windows: list[np.ndarray]) -> None:
    """The C front end + quantisation give Python's int8 input (≤ 1 step, on ≤ 2 % of values)."""
    frontend = feature_config_from_dict(bundle.feature_config).build()
    spec = bundle.input
    expected = np.stack([spec.quantize(frontend(w)[np.newaxis]).reshape(-1) for w in windows])
    got = np.stack([r.input for r in results]).astype(int)
    steps = np.abs(got - expected.astype(int))
    assert steps.max() <= 1 and (steps > 0).mean() <= 0.02, f"max {steps.max()}"


def test_exported_kws_program_streams_real_speech_and_matches_python_bit_for_bit(tmp_path):
    stream = speech_stream(2.0)
    bundle = kws_mfcc_bundle(tmp_path / "bundle", stream)
    results = run_on_host(bundle, stream, tmp_path / "fw")
    window = 16000
    # Inference every 250 ms (rounded down to whole 20 ms hops) once 1 s has been pushed.
    assert len(results) >= 4 and np.all(np.diff([r.pushed for r in results]) == 12 * 320)
    assert_identical_to_python(bundle, results)
    windows = [stream[r.pushed - window : r.pushed] for r in results]
    assert_inputs_match_front_end(bundle, results, windows)


def test_exported_vibration_program_streams_real_bearings_and_matches_python_bit_for_bit(
    tmp_path,
):
    from device_sim.features.vibration import VibrationFeatureConfig

    config = VibrationFeatureConfig(axes=1)
    stream = bearing_stream(config)
    n, hop = config.window_samples, config.hop_samples
    starts = range(0, len(stream) - n + 1, hop)
    bundle = vibration_bundle(tmp_path / "bundle", np.stack([stream[s : s + n] for s in starts]))
    results = run_on_host(bundle, stream, tmp_path / "fw")
    # One inference per hop once a window is in: every window of the stream.
    assert [r.pushed for r in results] == [s + n for s in starts]
    assert_identical_to_python(bundle, results)
    assert_inputs_match_front_end(
        bundle, results, [stream[r.pushed - n : r.pushed] for r in results]
    )


def test_exported_air_quality_program_on_a_simulated_station_matches_python_bit_for_bit(tmp_path):
    bundle, windows = air_quality_bundle(tmp_path / "bundle")
    windows = windows[::23][:8]
    results = run_on_host(bundle, windows, tmp_path / "fw")
    assert len(results) == len(windows)
    assert_identical_to_python(bundle, results)
    assert_inputs_match_front_end(bundle, results, list(windows))


def test_export_for_host_records_the_linked_sizes_in_the_bundle(tmp_path):
    bundle, _ = air_quality_bundle(tmp_path / "bundle")
    summary = export_firmware(bundle, tmp_path / "fw", target="host")
    linked = summary["linked"]
    assert linked["text_bytes"] > bundle.sizes["tflite_bytes"]  # the model array is in .text
    # The tensor arena is a static array: .bss holds at least kArenaSize.
    assert linked["bss_bytes"] >= summary["arena_size_bytes"]
    assert load_bundle(bundle.directory).sizes["linked"]["host"] == linked
