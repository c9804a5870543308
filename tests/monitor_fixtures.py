"""Fixtures for the drift-monitor tests: tiny *real* KWS and air-quality bundles, and a deployment.

The bundles go through the real quantize stage (:func:`quantize.stage.quantize_trained`), so they
carry the monitoring reference the build records, computed from their held-out sets by the int8
model; only the training is small: a two-layer dense net for a few epochs on the real front ends.

* KWS: four classes of synthetic 16 kHz audio (quiet room, a low tone, a high tone, a warble as
  the "unknown" word) in 2 s segments, each class once per 8 s; windows of 1 s every 250 ms as the device reads them,
  labelled by the segment that fills most of the window. The held-out set is another stream.
* Air quality: 150 days of the seeded station simulator; the last 40 days are held out
  (:data:`AQ_SPLIT_ROW` on), and :class:`StationReplay` replays them on a device.

Each takes a few seconds (TensorFlow import included) and is built once per test process.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle, load_bundle
from device_sim.fleet import FleetOptions, run_fleet

KWS_LABELS = ["_silence_", "_unknown_", "low", "high"]
KWS_RATE = 16000
SEGMENT_S = 2.0
HOP = 4000  # 250 ms: the device's default detection hop
AQ_SPLIT_ROW = 24 * 110  # first held-out hour of the air-quality fixture


def kws_audio(seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A stream of 2 s segments of the four classes, and the class of each sample."""
    rng = np.random.default_rng(seed)
    n_segments = int(np.ceil(seconds / SEGMENT_S))
    n = int(SEGMENT_S * KWS_RATE)
    t = np.arange(n) / KWS_RATE
    audio, labels = [], []
    # each class once per 8 s block, in a random order: steady label priors, as in a steady room
    order = np.concatenate([rng.permutation(len(KWS_LABELS)) for _ in range(n_segments // 4 + 1)])
    for label in order[:n_segments]:
        label = int(label)
        level = rng.uniform(0.1, 0.4)
        if label == 0:
            segment = np.zeros(n)
        elif label == 1:  # a warble: the "other word"
            segment = level * np.sin(2 * np.pi * (900 + 300 * np.sin(2 * np.pi * 3 * t)) * t)
        else:
            frequency = rng.uniform(300, 500) if label == 2 else rng.uniform(1800, 2600)
            segment = level * np.sin(2 * np.pi * frequency * t)
        audio.append(segment + rng.standard_normal(n) * 3e-4)  # a quiet room
        labels.append(np.full(n, label))
    samples = np.concatenate(audio)[: int(seconds * KWS_RATE)].astype(np.float32)
    return samples, np.concatenate(labels)[: len(samples)]


def kws_windows(frontend, samples: np.ndarray, classes: np.ndarray):
    """Features and majority labels of the device's windows (1 s every 250 ms)."""
    size = frontend.window_samples
    starts = range(0, len(samples) - size + 1, HOP)
    x = np.stack([frontend(samples[s : s + size]) for s in starts]).astype(np.float32)
    y = np.array([np.bincount(classes[s : s + size], minlength=4).argmax() for s in starts])
    return x, y


def _dense(keras, input_shape, n_outputs: int, activation: str | None):
    return keras.Sequential(
        [
            keras.layers.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(n_outputs, activation=activation),
        ]
    )


def _quantize(trained, name: str) -> Bundle:
    from quantize.stage import quantize_trained

    directory = Path(tempfile.mkdtemp(prefix=f"tinyfleet-{name}-"))
    return quantize_trained(trained, directory / "bundle")


@functools.lru_cache(maxsize=1)
def tiny_kws_bundle() -> Bundle:
    from device_sim.features.audio import LogMelConfig
    from training.keras_env import keras, seed_everything
    from training.stage import TrainedModel

    config = LogMelConfig(n_mels=10, hop_ms=40.0, fmax_hz=4000.0)
    frontend = config.build()
    x_train, y_train = kws_windows(frontend, *kws_audio(1, 240))
    x_eval, y_eval = kws_windows(frontend, *kws_audio(2, 120))
    seed_everything(0)
    model = _dense(keras, x_train.shape[1:], len(KWS_LABELS), "softmax")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    trained = TrainedModel(
        task="kws",
        name="monitor-fixture-kws",
        model=model,
        feature_config=config,
        head={"labels": KWS_LABELS},
        representative=x_train[:200],
        evaluation={"x": x_eval, "y": y_eval},
        provenance={"fixture": "tests/monitor_fixtures.py"},
    )
    return _quantize(trained, "kws")


@functools.lru_cache(maxsize=1)
def tiny_air_quality_bundle() -> Bundle:
    from device_sim.features.air_quality import AirQualityWindowConfig
    from device_sim.tasks.air_quality import DEFAULT_BANDS
    from training.air_quality.data import choose_inputs, log_z, target_head, windowed
    from training.keras_env import keras, seed_everything
    from training.stage import TrainedModel

    table = aq_table()
    split = AQ_SPLIT_ROW
    inputs, transforms = choose_inputs(table)
    rows = table.matrix(inputs)
    config = AirQualityWindowConfig.fitted(inputs, transforms, rows[:split], window_rows=3)
    names = ["CO(GT)", "NO2(GT)", "C6H6(GT)"]
    data = windowed(table, config, names)
    train = data["end_row"] < split
    targets = target_head(names, data["y"][train])
    z = np.stack([log_z(data["y"][train][:, j], t) for j, t in enumerate(targets)], axis=1)
    known = np.all(np.isfinite(z), axis=1)
    x_train = data["x"][train][known].astype(np.float32)
    seed_everything(0)
    model = _dense(keras, x_train.shape[1:], len(names), None)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x_train, z[known], epochs=20, batch_size=64, verbose=0)
    trained = TrainedModel(
        task="air_quality",
        name="monitor-fixture-aq",
        model=model,
        feature_config=config,
        head={"targets": targets, "bands": dict(DEFAULT_BANDS)},
        representative=x_train[:200],
        evaluation={
            "x": data["x"][~train].astype(np.float32),
            "reference": data["y"][~train],
            "invalid_rate": np.array(int(data["skipped"]) / (len(rows) - config.window_rows + 1)),
        },
        provenance={"fixture": "tests/monitor_fixtures.py"},
    )
    return _quantize(trained, "air-quality")


class StationReplay:
    """The fixture station's held-out hours, row for row, with its MOX sensors read at ``gain``
    times their response (1: as calibrated; > 1: an aged or poisoned sensor)."""

    def __init__(self, bundle: Bundle, gain: float = 1.0) -> None:
        from device_sim.sources.uci_air_csv import SENSOR_COLUMNS

        inputs = bundle.feature_config["inputs"]
        window_rows = int(bundle.feature_config["window_rows"])
        rows = aq_table().matrix(inputs)[AQ_SPLIT_ROW - window_rows + 1 :]
        gains = np.array([gain if name in SENSOR_COLUMNS else 1.0 for name in inputs])
        self.rows = rows * gains
        self.sample_rate = 1.0 / float(bundle.feature_config.get("row_seconds", 3600.0))
        self.position = 0

    def read(self, n: int) -> np.ndarray | None:
        if self.position >= len(self.rows):
            return None
        chunk = self.rows[self.position : self.position + n]
        self.position += len(chunk)
        return chunk

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=1)
def aq_table():
    """150 days of the seeded station simulator: 110 to train on, 40 held out."""
    from device_sim.sources.air_quality_sim import simulate

    return simulate(24 * 150, seed=0)


def copy_bundle(bundle: Bundle, directory: Path) -> Bundle:
    shutil.copytree(bundle.directory, directory)
    return load_bundle(directory)


def run_devices(
    broker, bundle: Bundle, tmp_path: Path, sources: list[Callable[[Bundle], Any]], windows: int
) -> dict[str, list]:
    """One simulated device per entry of ``sources`` (a factory of its sensor source), each
    publishing ``windows`` predictions; the predictions each published, by device id."""
    from ops.subscriber import Subscriber

    received: dict[str, list] = {}

    def collect(prediction, payload, received_ms) -> None:
        received.setdefault(prediction.device, []).append(prediction)

    subscriber = Subscriber(broker.url, on_prediction=collect).start().wait_connected()
    stamp = time.monotonic_ns()
    run_fleet(
        FleetOptions(
            broker.url,
            [bundle],
            devices=len(sources),
            device_prefix=f"dev{stamp % 100000}",
            rate_hz=400,
            max_windows=windows,
            prediction_qos=1,
            state_dir=tmp_path / f"state-{stamp}",
        ),
        source_factory=lambda b, index, seed: sources[index](b),
    )
    time.sleep(1.0)
    subscriber.close()
    return received


@contextmanager
def health_watch(broker) -> Iterator[dict[str, dict]]:
    """Retained/live ``tinyfleet/+/+/health`` messages, by topic, while the block runs."""
    import paho.mqtt.client as mqtt

    health: dict[str, dict] = {}
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"health-{time.time_ns()}")
    watcher.on_message = lambda c, u, m: health.__setitem__(m.topic, json.loads(m.payload))
    watcher.connect(broker.host, broker.port)
    watcher.subscribe("tinyfleet/+/+/health", qos=1)
    watcher.loop_start()
    try:
        yield health
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def start_monitor(broker, bundle_dir: Path, window: int | None, duration: float):
    """``tinyfleet monitor --json`` in a thread (``window`` None: the task's own); returns
    (thread, its captured stdout)."""
    output = StringIO()
    argv = ["monitor", "--broker", broker.url, "--bundle", str(bundle_dir)]
    argv += ["--duration", str(duration), "--json"]
    if window is not None:
        argv += ["--window", str(window)]

    def monitor() -> None:
        from tinyfleet.cli import main

        with redirect_stdout(output):
            main(argv)

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    return thread, output
