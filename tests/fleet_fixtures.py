"""Fixtures for the fleet/MQTT tests: a tiny *real* vibration bundle, brokers, subscribers.

The bundle is built here rather than by ``training.vibration.train`` because the quick preset
takes minutes on 2 cores; this one takes seconds and uses the same real parts end to end: the
vibration front end (256 frames at 3.2 kHz, 6 bands), a tf_keras autoencoder
trained for a few epochs on simulated-machine features, ``quantize.convert.to_int8_tflite``,
``write_bundle``, and on the device the real vibration source, task runtime and LiteRT.
It is cached on disk (keyed by :data:`FIXTURE_VERSION`) so test files and subprocesses share it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, QuantizedTensor, load_bundle, write_bundle
from device_sim.errors import BundleError

FIXTURE_VERSION = 4
REPO = Path(__file__).resolve().parents[1]
TINYFLEET = [sys.executable, "-m", "tinyfleet.cli"]


def tiny_vibration_bundle(seed: int = 0) -> Bundle:
    """The cached tiny vibration bundle (built on first use, ~10 s with the TensorFlow import)."""
    import dataclasses
    import hashlib

    from device_sim.features.vibration import VibrationFeatureConfig

    # the front end is still evolving: a new config field means a new cached bundle
    fields = ",".join(f.name for f in dataclasses.fields(VibrationFeatureConfig))
    key = hashlib.sha256(fields.encode()).hexdigest()[:8]
    cache = Path(tempfile.gettempdir()) / f"tinyfleet-fleet-fixture-v{FIXTURE_VERSION}-{seed}-{key}"
    try:
        return load_bundle(cache)
    except BundleError:
        pass
    staging = Path(tempfile.mkdtemp(prefix="tinyfleet-fixture-"))
    _build(staging, seed)
    try:
        os.replace(staging, cache)
    except OSError:  # another process won the race; use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(cache)


def _build(directory: Path, seed: int) -> None:
    import dataclasses

    from device_sim.features.vibration import VibrationFeatureConfig
    from device_sim.sources.vibration import SimSource
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    small = {
        "sample_rate": 3200.0,
        "window_samples": 256,
        "hop_samples": 128,
        "n_bands": 6,
        "f_min": 20.0,
        "f_max": 1600.0,
        "hf_cutoff_hz": 800.0,
        # order tracking needs its lowest order 2 FFT bins (25 Hz here) above 0
        "speed_range_hz": (60.0, 300.0),
    }
    known = {f.name for f in dataclasses.fields(VibrationFeatureConfig)}
    raw = VibrationFeatureConfig(**{k: v for k, v in small.items() if k in known})
    source = SimSource(raw.sample_rate, raw.axes, seed=seed)
    frontend = raw.build()
    samples = source.read(256 * 400)
    windows = samples.reshape(400, 256, raw.axes)
    features = np.stack([frontend(w) for w in windows])
    config = raw.with_normalization(features.mean(axis=0), features.std(axis=0))
    x = np.stack([config.build()(w) for w in windows]).astype(np.float32)
    keras.utils.set_random_seed(seed)
    n = x.shape[1]
    model = keras.Sequential(
        [
            keras.layers.Input((n,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(n),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, x, epochs=10, batch_size=16, verbose=0)
    errors = np.mean((model.predict(x, verbose=0) - x) ** 2, axis=1)
    tflite = to_int8_tflite(model, x)
    from device_sim.interpreter import Int8Model

    spec = Int8Model(tflite)
    write_bundle(
        directory,
        tflite,
        task="vibration",
        name="fleet-fixture-ae",
        input=QuantizedTensor(
            spec.input_spec.shape,
            spec.input_spec.dtype,
            spec.input_spec.scale,
            spec.input_spec.zero_point,
        ),
        output=QuantizedTensor(
            spec.output_spec.shape,
            spec.output_spec.dtype,
            spec.output_spec.scale,
            spec.output_spec.zero_point,
        ),
        feature_config=config.to_dict(),
        head={
            "anomaly_threshold": float(np.quantile(errors, 0.99)),
            "feature_names": config.feature_names(),
            "feature_ranges_hz": config.feature_ranges_hz(),
            "alarm_k": 3,
            "alarm_n": 5,
        },
        provenance={"fixture": "tests/fleet_fixtures.py", "seed": seed},
    )


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``tinyfleet ARGS`` in a subprocess (the way users run it) and capture its output."""
    return subprocess.run(
        [*TINYFLEET, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def start_cli(*args: str, stdout=subprocess.PIPE) -> subprocess.Popen[str]:
    """Start ``tinyfleet ARGS`` in the background (for SIGKILL tests)."""
    return subprocess.Popen(
        [*TINYFLEET, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=REPO
    )


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed; returns the last value."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def seq_counters(state_dir: Path) -> dict[tuple[str, str], int]:
    """(device, task) → next seq, read from the devices' outbox files in ``state_dir``."""
    import sqlite3

    counters: dict[tuple[str, str], int] = {}
    for path in Path(state_dir).glob("*.sqlite"):
        with sqlite3.connect(path) as conn:
            for device, task, value in conn.execute("SELECT device, task, next FROM seq"):
                counters[(device, task)] = int(value)
    return counters


def expected_keys(state_dir: Path) -> set[tuple[str, str, int]]:
    """Every (device, task, seq) the devices of ``state_dir`` ever published."""
    return {
        (device, task, seq)
        for (device, task), value in seq_counters(state_dir).items()
        for seq in range(value)
    }


class Collector:
    """Every prediction a :class:`~ops.subscriber.Subscriber` passes on, by key."""

    def __init__(self) -> None:
        import threading

        self.keys: list[tuple[str, str, int]] = []
        self.versions: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, prediction, payload: bytes, received_ms: int) -> None:
        with self._lock:
            self.keys.append(prediction.key)
            self.versions.append(prediction.model["version"])
