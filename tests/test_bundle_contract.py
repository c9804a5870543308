"""The bundle is the contract between stages: it round-trips, and it refuses what it cannot trust."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from bundle_fixtures import tiny_int8_model, write_tiny_bundle

from device_sim.bundle import SCHEMA_VERSION, load_bundle, update_bundle
from device_sim.errors import BundleError
from device_sim.interpreter import Int8Model


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return tiny_int8_model()


@pytest.fixture()
def bundle_dir(tmp_path: Path, model_bytes: bytes) -> Path:
    write_tiny_bundle(tmp_path / "bundle", model_bytes)
    return tmp_path / "bundle"


def test_written_bundle_loads_with_identical_fields_and_runs(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert bundle.head["labels"] == ["a", "b", "c"]
    assert bundle.input.dtype == "int8" and bundle.output.dtype == "int8"
    assert bundle.sizes["tflite_bytes"] == (bundle_dir / "model.tflite").stat().st_size
    assert bundle.provenance["tinyfleet_version"]
    assert bundle.provenance["created_utc"].endswith("Z")
    model = Int8Model.from_bundle(bundle)
    out = model.predict(np.zeros(8, dtype=np.float32))
    assert out.shape == (3,) and np.all(np.isfinite(out))


def test_tampered_model_is_refused_with_a_clear_message(bundle_dir: Path) -> None:
    model_path = bundle_dir / "model.tflite"
    data = bytearray(model_path.read_bytes())
    data[-20] ^= 0xFF
    model_path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its bundle.*rebuild"):
        load_bundle(bundle_dir)


def test_unknown_schema_version_is_refused(bundle_dir: Path) -> None:
    manifest_path = bundle_dir / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"schema version {SCHEMA_VERSION + 1}"):
        load_bundle(bundle_dir)


def test_truncated_model_is_refused_even_when_hash_was_rewritten(bundle_dir: Path) -> None:
    from device_sim.bundle import sha256_bytes

    truncated = (bundle_dir / "model.tflite").read_bytes()[:7]
    (bundle_dir / "model.tflite").write_bytes(truncated)
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    manifest["model_sha256"] = sha256_bytes(truncated)
    (bundle_dir / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a TFLite flatbuffer"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: (p / "bundle.json").unlink(), "bundle.json is missing"),
        (lambda p: (p / "model.tflite").unlink(), "model.tflite is missing"),
        (lambda p: (p / "bundle.json").write_text("{not json"), "not valid JSON"),
        (lambda p: shutil.rmtree(p), "does not exist"),
    ],
)
def test_incomplete_bundles_fail_loudly(bundle_dir: Path, mutate, message: str) -> None:
    mutate(bundle_dir)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_dir)


def test_update_bundle_merges_sizes_and_keeps_the_hash_valid(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    update_bundle(bundle, sizes={"arena_bytes": 1234})
    reloaded = load_bundle(bundle_dir)
    assert reloaded.sizes["arena_bytes"] == 1234
    assert reloaded.sizes["tflite_bytes"] == bundle.sizes["tflite_bytes"]


def test_input_of_the_wrong_shape_is_refused(bundle_dir: Path) -> None:
    model = Int8Model.from_bundle(load_bundle(bundle_dir))
    with pytest.raises(BundleError, match="expects"):
        model.predict(np.zeros(9, dtype=np.float32))
