"""Batching across devices changes no payload: a fleet run batched == the same fleet one by one.

The simulated fleet puts the due windows of all its devices through one front-end call and one
batched invoke per model (``device_sim.device.run_windows``); a real device runs the same function
with one window. Here two identically seeded fleets of three micromodels (a small real KWS conv
net on MFCCs, the tiny vibration autoencoder, a tiny air-quality net) produce the same windows,
one fleet in batches, the other device by device, and every message in their outboxes must be
the same bytes once the wall-clock fields (``ts``, ``ts_ms``, ``timing_ms``) are masked. Some
windows are broken on purpose (NaN samples, clipped audio), so batches mix valid and invalid rows.
No broker is needed: the devices queue into their outboxes, which is what would be sent.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from device_sim.bundle import write_bundle
from device_sim.device import run_windows
from device_sim.fleet import Fleet, FleetOptions
from device_sim.interpreter import Int8Model
from device_sim.sources import open_source
from ops.broker import free_port
from tests.fleet_fixtures import tiny_vibration_bundle

DEVICES = 5
ROUNDS = 12
LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _kws_bundle(directory: Path):
    """A small real KWS model: conv + dense on the MFCC front end, int8 (a few seconds)."""
    from device_sim.features.audio import MfccConfig
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras, seed_everything

    config = MfccConfig()
    frontend = config.build()
    seed_everything(0)
    model = keras.Sequential(
        [
            keras.layers.Input(frontend.feature_shape),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(len(LABELS) + 2, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((32, frontend.window_samples))).astype(np.float32)
    tflite = to_int8_tflite(model, frontend.batch(clips))
    spec = Int8Model(tflite)
    return write_bundle(
        directory,
        tflite,
        task="kws",
        name="batching-kws",
        input=spec.input_spec,
        output=spec.output_spec,
        feature_config=config.to_dict(),
        head={"labels": [*LABELS, "_silence_", "_unknown_"], "keywords": LABELS},
        extra={"detection": {"hop_ms": 250, "threshold": 0.2}},
    )


class _Glitchy:
    """A seeded source that breaks some reads: NaN samples, or audio driven into clipping."""

    def __init__(self, source, seed: int) -> None:
        self.source, self.sample_rate = source, source.sample_rate
        self.rng = np.random.default_rng(seed)

    def read(self, n: int):
        chunk = self.source.read(n)
        if chunk is None:
            return None
        chunk = np.array(chunk, dtype=np.float64 if chunk.ndim > 1 else np.float32)
        draw = self.rng.random()
        if draw < 0.15:
            chunk[len(chunk) // 2] = np.nan
        elif draw < 0.25 and chunk.ndim == 1:
            chunk[: len(chunk) // 2] = 1.0  # the microphone saturates
        return chunk

    def close(self) -> None:
        self.source.close()


class _KwsAudio:
    """Endless seeded tones in noise (the speech synthesizers are not needed for this test)."""

    def __init__(self, seed: int, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def read(self, n: int):
        t = (self.t + np.arange(n)) / self.sample_rate
        self.t += n
        tone = 0.2 * np.sin(2 * np.pi * self.rng.uniform(200, 2000) * t)
        return (tone + 0.05 * self.rng.standard_normal(n)).astype(np.float32)

    def close(self) -> None:
        pass


def _sources(bundle, index: int, seed: int):
    if bundle.task == "kws":
        return _Glitchy(_KwsAudio(seed), seed)
    return _Glitchy(open_source(bundle, "sim", seed=seed), seed)


def _fleet(bundles, state: Path) -> Fleet:
    # nobody listens on this port: the devices only fill their outboxes
    options = FleetOptions(
        f"mqtt://127.0.0.1:{free_port()}", bundles, devices=DEVICES, state_dir=state, seed=3
    )
    return Fleet(options, source_factory=_sources)


def _outbox(fleet: Fleet) -> dict[tuple[str, int], bytes]:
    fleet.spool_db.commit()
    with sqlite3.connect(fleet.spool_db.path) as db:
        rows = db.execute("SELECT topic, payload FROM outbox ORDER BY id").fetchall()
    masked: dict[tuple[str, int], bytes] = {}
    for topic, payload in rows:
        payload = bytes(payload)
        seq = int(re.search(rb'"seq":(\d+)', payload).group(1))
        payload = re.sub(rb'"ts":"[^"]*","ts_ms":\d+', b'"ts":_,"ts_ms":_', payload)
        payload = re.sub(rb'"timing_ms":\{[^}]*\}', b'"timing_ms":_', payload)
        masked[(topic, seq)] = payload
    return masked


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from tests.ops_fixtures import air_quality_bundle, tiny_model

    root = tmp_path_factory.mktemp("bundles")
    return [
        _kws_bundle(root / "kws"),
        tiny_vibration_bundle(),
        air_quality_bundle(root / "air_quality", tiny_model()),
    ]


def test_batched_fleet_publishes_the_same_bytes_as_one_device_at_a_time(tmp_path, bundles):
    batched, single = _fleet(bundles, tmp_path / "batched"), _fleet(bundles, tmp_path / "single")
    tasks = [b.task for b in bundles]
    try:
        for round_ in range(ROUNDS):
            end_ms = 1_800_000_000_000 + 250 * round_
            requests = [(d, t, end_ms) for d in batched.devices for t in tasks]
            assert all(run_windows(requests))
            for device in single.devices:
                for task in tasks:
                    assert device.run_window(task, end_ms)
        a, b = _outbox(batched), _outbox(single)
    finally:
        batched.close()
        single.close()
    predictions = [key for key in a if key[0].endswith("/prediction")]
    assert len(predictions) == DEVICES * len(tasks) * ROUNDS
    assert a == b
    texts = b"".join(a.values())
    assert texts.count(b'"valid":false') >= 5, "the batches mixed valid and invalid windows"
    assert texts.count(b'"valid":true') >= DEVICES * ROUNDS


def test_batched_invoke_gives_each_row_what_a_single_invoke_gives(bundles):
    rng = np.random.default_rng(1)
    for bundle in bundles:
        model = Int8Model.from_bundle(bundle)
        features = rng.normal(0, 3, (37, *model.input_spec.shape[1:])).astype(np.float32)
        one_by_one = np.stack([model.predict(row) for row in features])
        np.testing.assert_array_equal(model.predict_batch(features), one_by_one)


def test_shared_recordings_are_rendered_once_per_process_and_looped_per_device(tmp_path, bundles):
    from device_sim.sources.shared import RECORDING_WINDOWS, SharedRecordings

    vibration = bundles[1]
    options = FleetOptions(
        f"mqtt://127.0.0.1:{free_port()}",
        [vibration],
        devices=4,
        state_dir=tmp_path,
        shared_recordings=2,
    )
    fleet = Fleet(options)
    try:
        sources = [d.pipelines["vibration"].source for d in fleet.devices]
        assert sources[0].recording is sources[2].recording  # one copy per recording, shared
        assert sources[0].recording is not sources[1].recording
        assert not sources[0].recording.codes.flags.writeable
        assert all(run_windows([(d, "vibration", None) for d in fleet.devices]))
    finally:
        fleet.close()
    factory = SharedRecordings(1)
    looped = factory(vibration, 0, seed=5)
    recording = looped.recording
    total = len(recording)
    assert total > RECORDING_WINDOWS * vibration.feature_config["hop_samples"]
    everything = recording.rows(recording.codes)
    start = looped.position
    chunk = looped.read(total + 10)  # wraps around: never runs dry
    np.testing.assert_array_equal(chunk[:10], everything[(start + np.arange(10)) % total])
    assert looped.position == (start + 10) % total


def test_shared_recordings_keep_16_bit_codes_that_give_back_the_rendered_samples():
    from device_sim.sources.shared import Recording

    rng = np.random.default_rng(3)
    rows = (rng.normal(0, [0.5, 2.0, 7.0], (200_000, 3))).astype(np.float32)
    recording = Recording.of(rows.copy(), 6400.0)
    assert recording.codes.dtype == np.int16 and recording.codes.nbytes == rows.nbytes // 2
    samples = recording.rows(recording.codes)
    assert samples.dtype == np.float32
    # each channel's step is a power of two at most 2/32767 of its peak
    step = recording.scale
    assert np.all(np.log2(step) == np.round(np.log2(step)))
    assert np.all(step <= 2 * np.abs(rows).max(axis=0) / 32767)
    assert np.abs(samples - rows).max(axis=0).tolist() <= (step / 2).tolist()
    small = rng.normal(0, 1, (100, 10))  # below the size limit: kept as rendered
    assert Recording.of(small, 1.0).rows(small) is small
    with_nan = rows.copy()
    with_nan[5, 1] = np.nan
    assert Recording.of(with_nan, 1.0).scale is None


def test_task_rate_sets_one_tasks_pace_and_the_others_keep_real_time(tmp_path, bundles):
    from device_sim.errors import ConfigError

    kws, vibration = bundles[0], bundles[1]
    options = FleetOptions(
        f"mqtt://127.0.0.1:{free_port()}",
        [kws, vibration],
        devices=2,
        state_dir=tmp_path,
        task_rate_hz={"vibration": 2.0},
    )
    fleet = Fleet(options, source_factory=_sources)
    try:
        intervals = {slot.task: slot.interval for _, _, slot in fleet._schedule()}
    finally:
        fleet.close()
    assert intervals == {"kws": pytest.approx(0.25), "vibration": pytest.approx(0.5)}
    with pytest.raises(ConfigError, match="task-rate"):
        FleetOptions("mqtt://x:1", [kws], task_rate_hz={"kws": 0}).check()
