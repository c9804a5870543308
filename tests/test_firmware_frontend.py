"""Differential tests across the bridge: each C99 front end, compiled with gcc, against Python.

Inputs are real-ish: Speech Commands clips, the physics-based vibration simulator (healthy and
faulty machines), the air-quality station simulator. Tolerances are stated per kind and are far
below one int8 input step of a trained model (log-mel/MFCC steps are ~0.05–0.1, standardised
features ~0.02–0.05), so the device quantizes the same features the Python simulator does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from device_sim.features import feature_config_from_dict
from device_sim.features.air_quality import AirQualityWindowConfig, sliding_windows
from device_sim.features.audio import default_config, with_normalization
from device_sim.features.vibration import VibrationFeatureConfig, validate_window
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.vibration import SimSource
from device_sim.sources.vibration_sim import FaultSchedule
from device_sim.sources.wav_io import read_wav
from firmware_bridge.frontend_c import generate_frontend
from firmware_bridge.host_check import C_FLAGS, compile_c, run_frontend

SPEECH = Path("/work/shared/data/speech_commands_dev")


def _speech_clips(count: int) -> np.ndarray:
    files = sorted(SPEECH.glob("*/*.wav"))
    assert files, f"no speech clips under {SPEECH}"
    picks = [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]
    clips = []
    for path in picks:
        audio = read_wav(path, 16000)[:16000]
        clips.append(np.pad(audio, (0, 16000 - len(audio))))
    return np.stack(clips).astype(np.float32)


@pytest.mark.parametrize(("kind", "standardised"), [("log_mel", False), ("mfcc", True)])
def test_c_audio_front_end_matches_python_on_speech_clips(tmp_path, kind, standardised):
    config = default_config(kind)
    clips = _speech_clips(12)
    clips[0] = 0.0  # digital silence: every mel energy sits on the log floor
    if standardised:  # as KWS training does: per-coefficient mean/std of the training features
        config = with_normalization(config, config.build().batch(clips))
    frontend = config.build()
    c = generate_frontend(config.to_dict())
    status, features = run_frontend(c, clips, tmp_path)
    expected = frontend.batch(clips).reshape(len(clips), -1)
    assert np.all(status == 0)
    # Log-mel values span about -14 … +4; measured max error ~1e-4 (float32 FFT and log).
    error = np.abs(features - expected)
    assert error.max() < 5e-4, f"max |C - Python| = {error.max():.2e}"


def _vibration_config() -> VibrationFeatureConfig:
    return VibrationFeatureConfig(window_samples=4096, sample_rate=6400.0)


def test_c_vibration_front_end_matches_python_on_simulated_machines(tmp_path):
    config = _vibration_config()
    windows = []
    faults = (None, "outer_race", "inner_race", "looseness", "imbalance", "misalignment", "ball")
    for seed, fault in enumerate(faults):
        schedule = (
            FaultSchedule(kind="none")
            if fault is None
            else FaultSchedule(kind=fault, onset_s=0.0, start_severity=0.8, end_severity=0.8)
        )
        source = SimSource(config.sample_rate, config.axes, seed=seed, fault=schedule)
        for _ in range(4):  # speed and load drift between windows
            windows.append(source.read(config.window_samples))
    windows = np.stack(windows)
    raw = config.build().batch(windows)
    # Standardise with statistics of these windows, as training does, so the comparison sees
    # the scale the model sees.
    config = config.with_normalization(raw.mean(axis=0), raw.std(axis=0))
    expected = config.build().batch(windows)
    c = generate_frontend(config.to_dict())
    status, features = run_frontend(c, windows, tmp_path)
    assert np.all(status == 0)
    error = np.abs(features - expected)
    # Standardised features (units of σ); float32 FFT, double moments: measured ~1e-6.
    assert error.max() < 1e-4, f"max |C - Python| = {error.max():.3g} σ at {error.argmax()}"


def test_c_vibration_front_end_refuses_what_validate_window_refuses(tmp_path):
    config = _vibration_config()
    good = SimSource(config.sample_rate, config.axes, seed=3).read(config.window_samples)
    clipped = good.copy()
    clipped[100, 1] = config.full_scale_g
    flat = good.copy()
    flat[:, 2] = 0.25
    broken = good.copy()
    broken[7, 0] = np.nan
    windows = np.stack([good, broken, clipped, flat])
    c = generate_frontend(config.to_dict())
    status, _ = run_frontend(c, windows, tmp_path)
    assert [validate_window(w, config.full_scale_g) is None for w in windows] == [
        True,
        False,
        False,
        False,
    ]
    assert status.tolist() == [0, 1, 2, 3]


def test_c_air_quality_front_end_matches_python_on_simulated_station(tmp_path):
    table = simulate(24 * 14, seed=5)
    inputs = tuple(
        name
        for name in (
            "PT08.S1(CO)",
            "PT08.S2(NMHC)",
            "PT08.S3(NOx)",
            "T",
            "RH",
            "AH",
            "hour",
            "weekday",
        )
        if table.has(name)
    )
    transform = {
        "T": "linear",
        "RH": "linear",
        "AH": "linear",
        "hour": "hour",
        "weekday": "weekend",
    }
    transforms = tuple(transform.get(name, "log") for name in inputs)
    rows = table.matrix(inputs)
    config = AirQualityWindowConfig.fitted(
        inputs, transforms, rows[: 24 * 7], window_rows=6, clip_linear=True
    )
    config = feature_config_from_dict(config.to_dict())  # exactly what a bundle round-trip gives
    frontend = config.build()
    windows = sliding_windows(rows, config.window_rows)[::5]
    expected = frontend.batch(windows)
    c = generate_frontend(config.to_dict())
    status, features = run_frontend(c, windows, tmp_path)
    complete = np.all(np.isfinite(windows), axis=(1, 2))
    assert complete.any() and (~complete).any(), "the simulator should produce some outages"
    assert np.array_equal(status == 0, complete)
    error = np.abs(features[complete] - expected[complete])
    assert error.max() < 1e-5, f"max |C - Python| = {error.max():.2e}"
    # the second week leaves the first week's weather range: the C port clipped like Python
    t_feature = expected[complete][:, inputs.index("T")]
    assert (
        np.isclose(t_feature, config.clip_high[inputs.index("T")]).any()
        or np.isclose(t_feature, config.clip_low[inputs.index("T")]).any()
    )


def test_c_audio_streaming_push_gives_the_python_features_of_the_last_window(tmp_path):
    """What main.cc does on a device: push 20 ms hops, never hold the 1 s window."""
    config = default_config("mfcc")
    clips = _speech_clips(3)
    config = with_normalization(config, config.build().batch(clips))
    frontend = config.build()
    c = generate_frontend(config.to_dict())
    for name, text in c.files().items():
        (tmp_path / name).write_text(text)
    stream = clips.reshape(-1).astype(np.float32)  # 3 s of speech, back to back
    hop, features = config.hop_samples, c.features
    (tmp_path / "stream.c").write_text(
        f"""\
#include <stdio.h>
#include "tinyfleet_frontend.h"
static float hop[TINYFLEET_FE_HOP_SAMPLES];
static float features[{features}];
int main(void)
{{
    long pushed = 0;
    while (fread(hop, sizeof(float), TINYFLEET_FE_HOP_SAMPLES, stdin) == TINYFLEET_FE_HOP_SAMPLES) {{
        int status = tinyfleet_frontend_push(hop, features);
        pushed += TINYFLEET_FE_HOP_SAMPLES;
        if (status == 1) return 1;
        if (status == 0) {{
            fwrite(&pushed, sizeof(long), 1, stdout);
            fwrite(features, sizeof(float), {features}, stdout);
        }}
    }}
    return 0;
}}
"""
    )
    compile_c(
        [*C_FLAGS, "-O2", "stream.c", "tinyfleet_frontend.c", "-lm", "-o", "stream"], tmp_path
    )
    result = subprocess.run(["./stream"], cwd=tmp_path, input=stream.tobytes(), capture_output=True)
    assert result.returncode == 0
    record = 8 + 4 * features
    raw = np.frombuffer(result.stdout, dtype=np.uint8).reshape(-1, record)
    ends = raw[:, :8].copy().view(np.int64)[:, 0]
    rows = raw[:, 8:].copy().view(np.float32)
    window = config.window_samples
    # The first answer comes once a whole window has been pushed, then one per hop.
    assert ends[0] == -(-window // hop) * hop and np.all(np.diff(ends) == hop)
    for end, got in list(zip(ends, rows, strict=True))[::10]:
        expected = frontend(stream[end - window : end]).reshape(-1)
        assert np.abs(got - expected).max() < 5e-4, f"window ending at sample {end}"


def _section_bytes(obj: Path, prefix: str) -> int:
    result = subprocess.run(["size", "-A", str(obj)], capture_output=True, text=True, check=True)
    sizes = [line.split() for line in result.stdout.splitlines()]
    return sum(int(parts[1]) for parts in sizes if parts and parts[0].startswith(prefix))


@pytest.mark.parametrize("kind", ["mfcc", "vibration_bands", "air_quality_window"])
def test_reported_front_end_flash_and_ram_match_what_gcc_allocates(tmp_path, kind):
    """The table/buffer bytes `tinyfleet profile` reports are what the compiler really lays out."""
    if kind == "mfcc":
        config = default_config("mfcc", norm_mean=(0.0,) * 10, norm_std=(1.0,) * 10)
    elif kind == "vibration_bands":
        base = VibrationFeatureConfig()
        config = base.with_normalization([0.0] * base.n_features, [1.0] * base.n_features)
    else:
        config = AirQualityWindowConfig(
            inputs=("PT08.S1(CO)", "T", "hour", "weekday"),
            transforms=("log", "linear", "hour", "weekend"),
            mean=(6.9, 18.0, 0.0, 0.0),
            std=(0.3, 8.0, 1.0, 1.0),
        )
    c = generate_frontend(config.to_dict())
    for name, text in c.files().items():
        (tmp_path / name).write_text(text)
    compile_c([*C_FLAGS, "-O2", "-c", "tinyfleet_frontend.c", "-o", "fe.o"], tmp_path)
    rodata = _section_bytes(tmp_path / "fe.o", ".rodata")
    bss = _section_bytes(tmp_path / "fe.o", ".bss")
    assert c.buffer_bytes <= bss <= c.buffer_bytes + 64  # + array alignment padding
    assert abs(rodata - c.table_bytes) <= max(0.03 * c.table_bytes, 256)


def test_c_vibration_streaming_push_matches_python_holding_an_int16_window_and_one_fft(tmp_path):
    """What main.cc does on a device: push 32 frames at a time, never hold a float window.

    The port keeps the window as int16 sensor counts (±full scale over 16 bits, what the
    accelerometer delivers); on a stream already at that resolution it equals Python on every
    window that ends on a hop, within the whole-window tolerance."""
    from firmware_bridge.frontend_c.vibration import sensor_counts

    config = _vibration_config()
    source = SimSource(
        config.sample_rate,
        config.axes,
        seed=4,
        fault=FaultSchedule(kind="outer_race", onset_s=1.0, start_severity=0.5, end_severity=0.9),
    )
    stream = sensor_counts(source.read(config.window_samples + 4 * config.hop_samples), 16.0)
    frontend_raw = config.build()
    starts = range(0, len(stream) - config.window_samples + 1, config.hop_samples)
    raw = frontend_raw.batch(np.stack([stream[s : s + config.window_samples] for s in starts]))
    config = config.with_normalization(raw.mean(axis=0), raw.std(axis=0) + 0.1)
    frontend = config.build()
    c = generate_frontend(config.to_dict())
    for name, text in c.files().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "stream.c").write_text(
        f"""\
#include <stdio.h>
#include "tinyfleet_frontend.h"
static float frames[TINYFLEET_FE_PUSH_VALUES];
static float features[{c.features}];
int main(void)
{{
    long pushed = 0;
    while (fread(frames, sizeof(float), TINYFLEET_FE_PUSH_VALUES, stdin) == TINYFLEET_FE_PUSH_VALUES) {{
        int status = tinyfleet_frontend_push(frames, features);
        pushed += TINYFLEET_FE_PUSH_FRAMES;
        if (status == TINYFLEET_FE_NOT_READY) continue;
        if (status != 0) return status;
        fwrite(&pushed, sizeof(long), 1, stdout);
        fwrite(features, sizeof(float), {c.features}, stdout);
    }}
    return 0;
}}
"""
    )
    compile_c(
        [*C_FLAGS, "-Wdouble-promotion", "-Wshadow", "-O2", "stream.c", "tinyfleet_frontend.c"]
        + ["-lm", "-o", "stream"],
        tmp_path,
    )
    result = subprocess.run(["./stream"], cwd=tmp_path, input=stream.tobytes(), capture_output=True)
    assert result.returncode == 0
    record = 8 + 4 * c.features
    raw = np.frombuffer(result.stdout, dtype=np.uint8).reshape(-1, record)
    ends = raw[:, :8].copy().view(np.int64)[:, 0]
    rows = raw[:, 8:].copy().view(np.float32)
    window = config.window_samples
    assert ends.tolist() == [window + i * config.hop_samples for i in range(5)]
    expected = frontend.batch(np.stack([stream[end - window : end] for end in ends]))
    error = np.abs(rows - expected)
    assert error.max() < 1e-4, f"max |C - Python| = {error.max():.3g} σ"
    # Front-end state: the int16 window, one FFT scratch, the low bins summed over axes (804 B
    # here) and a few counters -- the floor for these features (frontend_c/vibration.py).
    assert c.buffer_bytes <= 2 * window * config.axes + 4 * window + 1024
