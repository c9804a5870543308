"""``tinyfleet profile``/``export`` on a real tiny bundle: MACs by hand, calibration, CLI contract."""

from __future__ import annotations

import json

import pytest
from firmware_fixtures import kws_bundle, tiny_conv_model

from device_sim.bundle import load_bundle
from device_sim.model_graph import read_model
from firmware_bridge.profile import TARGETS, latency_estimates, profile_graph
from tinyfleet.cli import main

pytestmark = pytest.mark.needs_tf


def test_profile_counts_macs_and_parameters_of_each_layer_like_by_hand():
    report = profile_graph(read_model(tiny_conv_model((10, 8, 1), 4)))
    by_op = {row["op"]: row for row in report["layers"]}
    # conv 3x3, 1 → 8 channels, 'same' on 10x8: 10*8*8 outputs x 9 taps.
    assert by_op["CONV_2D"]["macs"] == 10 * 8 * 8 * 9
    assert by_op["CONV_2D"]["parameters"] == 8 * 9 + 8
    assert by_op["DEPTHWISE_CONV_2D"]["macs"] == 10 * 8 * 8 * 9
    # pooled to 5x4x8 = 160 features, dense to 4 classes.
    assert by_op["FULLY_CONNECTED"]["macs"] == 160 * 4
    assert by_op["AVERAGE_POOL_2D"]["macs"] == 0
    assert by_op["CONV_2D"]["output_bytes"] == 10 * 8 * 8  # int8 activations
    assert report["macs"] == sum(row["macs"] for row in report["layers"])


def test_latency_estimate_reproduces_the_mlperf_calibration_point():
    m4 = next(t for t in TARGETS if t.name.startswith("Cortex-M4F"))
    estimate = next(e for e in latency_estimates(2_660_000) if e["target"] == m4.name)
    # The published figure is 182 ms / 62.9 ms at 120 MHz; at 80 MHz the same cycles take 1.5x.
    assert estimate["reference_ms"] == pytest.approx(182 * 120 / 80, rel=1e-3)
    assert estimate["optimized_ms"] == pytest.approx(62.9 * 120 / 80, rel=1e-3)


def test_profile_cli_prints_one_json_object_with_layers_and_totals(tmp_path, capsys):
    bundle = kws_bundle(tmp_path / "bundle")
    assert main(["-q", "export", "--bundle", str(bundle.directory), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["arena_bytes"] == load_bundle(bundle.directory).sizes["arena_bytes"]
    assert main(["-q", "profile", "--bundle", str(bundle.directory), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    totals = report["totals"]
    assert totals["flash_bytes"] == bundle.sizes["tflite_bytes"] + totals["frontend_table_bytes"]
    assert totals["ram_bytes"] >= totals["arena_bytes"] + totals["frontend_buffer_bytes"]
    assert [row["op"] for row in report["layers"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert "estimates, not measurements" in report["latency_caveat"]


def test_export_cli_on_a_missing_bundle_says_what_to_do_and_exits_2(tmp_path, capsys):
    status = main(["export", "--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "fw")])
    assert status == 2
    assert "tinyfleet build" in capsys.readouterr().err
    assert not (tmp_path / "fw").exists()
