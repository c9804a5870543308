"""Helpers for the firmware tests: tiny real int8 models and bundles, gcc, the TFLM stubs.

The models are small tf_keras networks converted with the project's own ``to_int8_tflite`` (a few
seconds), so firmware tests never wait for task training. Results are cached per test session.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, write_bundle
from device_sim.interpreter import Int8Model

TFLM_STUB_DIR = Path(__file__).parent / "firmware_tflm_stub"
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror"]


@functools.cache
def tiny_conv_model(input_shape: tuple[int, ...] = (10, 8, 1), classes: int = 4) -> bytes:
    """A small conv → depthwise → pool → dense → softmax int8 model (about 4 KB)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(classes)(x)
    outputs = keras.layers.Softmax()(x)
    model = keras.Model(inputs, outputs)
    representative = np.random.default_rng(0).normal(size=(64, *input_shape)).astype(np.float32)
    return to_int8_tflite(model, representative)


@functools.cache
def tiny_dense_model(features: int, outputs: int = 1) -> bytes:
    """A small dense regressor/scorer on a flat feature vector (about 2 KB)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    out = keras.layers.Dense(outputs)(x)
    model = keras.Model(inputs, out)
    representative = np.random.default_rng(1).normal(size=(64, features)).astype(np.float32)
    return to_int8_tflite(model, representative)


def bundle_for(
    directory: Path,
    model_bytes: bytes,
    *,
    task: str,
    feature_config: dict,
    head: dict,
) -> Bundle:
    """Write a real bundle around ``model_bytes`` (quantization read back from the model)."""
    model = Int8Model(model_bytes)
    return write_bundle(
        directory,
        model_bytes,
        task=task,
        name=f"tiny-{task}",
        input=model.input_spec,
        output=model.output_spec,
        feature_config=feature_config,
        head=head,
    )


def kws_bundle(directory: Path) -> Bundle:
    """A KWS bundle: log-mel of 200 ms clips (9 frames x 8 mels) and a 4-label classifier."""
    return bundle_for(
        directory,
        tiny_conv_model((9, 8, 1), 4),
        task="kws",
        feature_config={"kind": "log_mel", "clip_ms": 200, "n_mels": 8},
        head={"labels": ["yes", "no", "_silence_", "_unknown_"]},
    )


def compiler() -> str:
    path = shutil.which("gcc")
    if path is None:
        raise RuntimeError("gcc is not installed: apt-get install gcc g++ (make setup does this)")
    return path


def run_gcc(args: list[str], cwd: Path, cxx: bool = False) -> None:
    """Run gcc/g++; on failure raise with the compiler's diagnostics."""
    tool = "g++" if cxx else compiler()
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed:\n{result.stderr}")


SPEECH = Path("/work/shared/data/speech_commands_dev")
BEARINGS = Path("/work/shared/data/bearing_uestc_dev")


def speech_stream(seconds: float) -> np.ndarray:
    """Real Speech Commands clips back to back (16 kHz float32), ``seconds`` long."""
    from device_sim.sources.wav_io import read_wav

    files = sorted(SPEECH.glob("*/*.wav"))
    if not files:
        raise FileNotFoundError(f"no speech clips under {SPEECH}")
    picks = [files[i] for i in np.linspace(0, len(files) - 1, 8).astype(int)]
    audio = np.concatenate([read_wav(path, 16000) for path in picks])
    return audio[: int(seconds * 16000)].astype(np.float32)


def bearing_windows(config, count_per_file: int = 2) -> np.ndarray:
    """Windows of real UESTC bearing recordings (normal and inner-race fault), resampled to the
    config's rate, one axis: ``(windows, window_samples, 1)`` in the recording's units."""
    from device_sim.sources.vibration_files import load_recording, resample

    windows = []
    for path in (BEARINGS / "normal" / "N_1000_1.mat", BEARINGS / "inner_race" / "I_1200_1.mat"):
        recording = resample(
            load_recording(path, channel="Data", sample_rate=20000.0), config.sample_rate
        )
        samples = recording.samples[:, :1]
        for start in np.linspace(0, len(samples) - config.window_samples, count_per_file):
            windows.append(samples[int(start) : int(start) + config.window_samples])
    return np.stack(windows).astype(np.float32)


def bearing_stream(config) -> np.ndarray:
    """A continuous real stream: a normal and an inner-race UESTC recording, each a window and two
    hops long, back to back, at the 16-bit resolution the C port stores (``(frames, 1)`` in g)."""
    from firmware_bridge.frontend_c.vibration import sensor_counts

    length = config.window_samples + 2 * config.hop_samples
    windows = bearing_windows(dataclasses.replace(config, window_samples=length), count_per_file=1)
    return sensor_counts(windows.reshape(-1, 1), config.full_scale_g)


def vibration_bundle(directory: Path, windows: np.ndarray, config=None) -> Bundle:
    """A vibration autoencoder bundle standardised on ``windows`` (as training does)."""
    from device_sim.features.vibration import VibrationFeatureConfig

    config = config or VibrationFeatureConfig(axes=windows.shape[-1])
    raw = config.build().batch(windows)
    config = config.with_normalization(raw.mean(axis=0), raw.std(axis=0))
    n = config.n_features
    return bundle_for(
        directory,
        tiny_dense_model(n, n),
        task="vibration",
        feature_config=config.to_dict(),
        head={"anomaly_threshold": 0.75, "error_scale": [1.0] * n, "alarm_k": 3, "alarm_n": 5},
    )


def station_rows(hours: int = 24 * 14) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Inputs, transforms and rows of the air-quality station simulator."""
    from device_sim.sources.air_quality_sim import simulate

    table = simulate(hours, seed=5)
    names = ("PT08.S1(CO)", "PT08.S2(NMHC)", "PT08.S3(NOx)", "T", "RH", "AH", "hour", "weekday")
    inputs = tuple(name for name in names if table.has(name))
    kinds = {"T": "linear", "RH": "linear", "AH": "linear", "hour": "hour", "weekday": "weekend"}
    transforms = tuple(kinds.get(name, "log") for name in inputs)
    return inputs, transforms, table.matrix(inputs)


def air_quality_bundle(directory: Path, window_rows: int = 6) -> tuple[Bundle, np.ndarray]:
    """An air-quality bundle fitted on a simulated station and complete windows of its rows."""
    from device_sim.features.air_quality import AirQualityWindowConfig, sliding_windows

    inputs, transforms, rows = station_rows()
    config = AirQualityWindowConfig.fitted(inputs, transforms, rows[: 24 * 7], window_rows=6)
    windows = sliding_windows(rows, config.window_rows)
    windows = windows[np.all(np.isfinite(windows), axis=(1, 2))]
    target = {"unit": "mg/m³", "log_mean": 0.26, "log_std": 0.62, "offset": 0.14}
    bundle = bundle_for(
        directory,
        tiny_dense_model(window_rows * config.features_per_row, 3),
        task="air_quality",
        feature_config=config.to_dict(),
        head={
            "targets": [
                {"name": "CO(GT)", **target},
                {"name": "NO2(GT)", **target},
                {"name": "C6H6(GT)", **target},
            ]
        },
    )
    return bundle, windows


def kws_mfcc_bundle(directory: Path, stream: np.ndarray) -> Bundle:
    """A KWS bundle on the default 1 s MFCC front end (49 x 10), standardised on ``stream``'s
    windows as training does, so int8 inputs use their whole range."""
    from device_sim.features.audio import default_config, with_normalization

    config = default_config("mfcc")
    clips = np.stack(
        [stream[start : start + 16000] for start in range(0, len(stream) - 16000 + 1, 4000)]
    )
    config = with_normalization(config, config.build().batch(clips))
    return bundle_for(
        directory,
        tiny_conv_model((49, 10, 1), 4),
        task="kws",
        feature_config=config.to_dict(),
        head={"labels": ["yes", "no", "_silence_", "_unknown_"]},
    )


def python_reference(bundle: Bundle, results: list) -> dict[str, np.ndarray]:
    """Int8 outputs of LiteRT (Int8Model) and the TFLM Python interpreter on the C program's inputs."""
    from tflite_micro.python.tflite_micro import runtime

    litert = Int8Model.from_bundle(bundle)
    tflm = runtime.Interpreter.from_bytes(bundle.model_bytes(), arena_size=256 * 1024)
    shape = litert.input_spec.shape
    outputs = {"litert": [], "tflm": []}
    for result in results:
        q = result.input.reshape(shape)
        outputs["litert"].append(litert.invoke_quantized(q).reshape(-1))
        tflm.set_input(q, 0)
        tflm.invoke()
        outputs["tflm"].append(tflm.get_output(0).reshape(-1))
    return {name: np.stack(values) for name, values in outputs.items()}


def assert_identical_to_python(bundle: Bundle, results: list, *, litert_steps: int = 0) -> None:
    """The program's int8 outputs equal the TFLM Python interpreter's on the same int8 inputs.

    ``Int8Model`` (LiteRT's builtin kernels) must be identical too, or within ``litert_steps``
    int8 steps where the inputs are known to hit a rounding difference between LiteRT's and
    TFLM's fully connected kernels (docs/firmware.md, interpreter parity)."""
    assert results, "the program made no inference"
    c_outputs = np.stack([r.output for r in results])
    reference = python_reference(bundle, results)
    assert np.array_equal(c_outputs, reference["tflm"]), "C program != TFLM Python interpreter"
    steps = np.abs(c_outputs.astype(int) - reference["litert"].astype(int))
    assert steps.max() <= litert_steps, f"C program vs Int8Model: up to {steps.max()} steps"
