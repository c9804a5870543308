"""One small real KWS training run, end to end: real clips → DS-CNN → prune → int8 bundle → device."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf_keras")

from device_sim.bundle import load_bundle  # noqa: E402
from device_sim.features import frontend_from_dict  # noqa: E402
from device_sim.interpreter import Int8Model  # noqa: E402
from device_sim.sources.kws import open_source  # noqa: E402
from device_sim.tasks import runtime_for  # noqa: E402
from training.stage import TrainOptions  # noqa: E402

# A Speech Commands-style folder; override with $TINYFLEET_SPEECH_COMMANDS.
DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    if not DEV.is_dir():
        pytest.skip("needs the Speech Commands dev folder")
    from pipeline.build import build

    options = TrainOptions(
        data=DEV,
        preset="quick",
        seed=3,
        hyperparameters=(
            ("epochs", 10),
            ("copies", 1),
            ("width", 24),
            ("depth", 1),
            ("fresh_augmentation", 0),  # fresh epochs are tested in test_kws_teacher.py
        ),
    )
    out = tmp_path_factory.mktemp("kws-bundle")
    return build("kws", options, out, export=False)


@pytest.mark.slow
@pytest.mark.needs_tf
def test_a_seconds_long_training_run_learns_and_writes_a_verified_int8_bundle(tiny_bundle):
    bundle = load_bundle(tiny_bundle.directory)  # checks sha256 and schema
    int8 = bundle.metrics["int8"]
    assert list(int8)[:4] == ["accuracy", "per_class", "n", "confusion"]
    assert int8["n"] > 400  # the held-out speakers' clips
    assert int8["accuracy"] > 0.25, "3x chance (1/12) after seconds of training"
    assert abs(int8["accuracy"] - bundle.metrics["float"]["accuracy"]) < 0.05
    assert bundle.sparsity["overall"] > 0.1  # pruned
    assert bundle.input.dtype == "int8" and bundle.input.shape == (1, 49, 10, 1)
    assert bundle.feature_config["kind"] == "mfcc" and bundle.feature_config["norm_mean"]
    assert 0 < bundle.extra["macs"] < 2_000_000


@pytest.mark.slow
@pytest.mark.needs_tf
def test_the_bundle_runs_on_the_device_side_over_a_stream_of_real_clips(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle.directory)
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    runtime = runtime_for(bundle)
    clips = sorted((DEV / "yes").glob("*.wav"))[:2] + sorted((DEV / "stop").glob("*.wav"))[:2]
    folder = tmp_path / "stream"
    folder.mkdir()
    for i, clip in enumerate(clips):
        (folder / f"{i}_{clip.parent.name}.wav").symlink_to(clip)
    source = open_source(bundle, "file", path=folder)
    buffer = np.zeros(frontend.window_samples, dtype=np.float32)
    results = []
    while (chunk := source.read(runtime.hop_samples)) is not None:
        buffer = np.concatenate([buffer[len(chunk) :], chunk])
        features = frontend(buffer)
        output = model.predict(features)
        assert output.shape == (12,) and abs(float(output.sum()) - 1.0) < 0.05
        results.append(runtime.process(output, features))
    assert len(results) == int(np.ceil((4 + 5) * 16000 / runtime.hop_samples))  # 4 clips, 5 gaps
    assert {r.fields["label"] for r in results} <= set(bundle.head["labels"])
    events = [r.event for r in results if r.event]
    assert len(events) <= len(clips), "at most one event per spoken word"


@pytest.mark.slow
@pytest.mark.needs_tf
def test_evaluate_prints_the_documented_keys_and_writes_a_confusion_png(tiny_bundle, tmp_path):
    from training import kws

    folder = tmp_path / "someone_elses_clips"
    for word in ("yes", "no", "marvin"):
        (folder / word).mkdir(parents=True)
        for clip in sorted((DEV / ("_unknown_" if word == "marvin" else word)).glob("*.wav"))[:3]:
            (folder / word / clip.name).symlink_to(clip)
    (folder / "_background_noise_").symlink_to(DEV / "_background_noise_")
    bundle = load_bundle(tiny_bundle.directory)
    result = kws.evaluate(bundle, folder, TrainOptions(seed=1))
    assert list(result)[:4] == ["accuracy", "per_class", "n", "confusion"]
    assert result["n"] == 9 + 1  # every clip, plus silence cut from the background recordings
    confusion = np.array(result["confusion"])
    assert confusion.shape == (12, 12) and confusion.sum() == result["n"]
    assert confusion[bundle.head["labels"].index("_unknown_")].sum() == 3  # marvin → unknown
    png = Path(result["plot"])
    assert png.parent == bundle.directory and png.read_bytes()[:4] == b"\x89PNG"
