"""Vibration recording loaders on files the tests write themselves (numpy/scipy only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import io as scipy_io
from scipy.io import wavfile

from device_sim.errors import DataError
from device_sim.sources.vibration_files import load_recording, resample
from training.vibration import folder_recordings


def tone(rate: float, seconds: float, hz: float, axes: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([np.sin(2 * np.pi * hz * t) * (0.1 + 0.1 * a) for a in range(axes)], axis=1)


def write_cwru_mat(path: Path, record: int = 97, rate: float | None = None) -> np.ndarray:
    """A .mat file laid out like the CWRU bearing data (record number in the variable names)."""
    drive_end = tone(12000, 0.5, 157.0)
    variables = {
        f"X{record:03d}_DE_time": drive_end,  # CWRU stores (n, 1) columns
        f"X{record:03d}_FE_time": tone(12000, 0.5, 60.0) * 0.5,
        f"X{record:03d}RPM": np.array([[1797]]),
    }
    if rate:
        variables["fs"] = np.array([[rate]])
    scipy_io.savemat(path, variables)
    return drive_end


def test_cwru_mat_defaults_to_the_drive_end_channel_whatever_the_record_number(tmp_path):
    path = tmp_path / "IR007_0.mat"
    drive_end = write_cwru_mat(path, record=105)
    recording = load_recording(path, sample_rate=12000)
    assert recording.samples.shape == (6000, 1)
    assert np.allclose(recording.samples[:, 0], drive_end[:, 0], atol=1e-6)
    assert recording.sample_rate == 12000
    assert recording.rpm == 1797


def test_cwru_mat_channel_option_picks_the_fan_end(tmp_path):
    path = tmp_path / "normal_0.mat"
    write_cwru_mat(path)
    fan_end = load_recording(path, sample_rate=12000, channel="FE").samples
    exact = load_recording(path, sample_rate=12000, channel="X097_FE_time").samples
    assert np.array_equal(fan_end, exact)
    assert np.abs(fan_end).max() == pytest.approx(0.05, rel=1e-3)


def test_mat_without_a_rate_asks_for_sample_rate_and_a_stored_rate_wins(tmp_path):
    path = tmp_path / "a.mat"
    write_cwru_mat(path)
    with pytest.raises(DataError, match="--sample-rate"):
        load_recording(path)
    stored = tmp_path / "b.mat"
    write_cwru_mat(stored, rate=48000)
    assert load_recording(stored, sample_rate=12000).sample_rate == 48000


def test_mat_with_a_missing_channel_lists_the_variables(tmp_path):
    path = tmp_path / "a.mat"
    write_cwru_mat(path)
    with pytest.raises(DataError, match="X097_DE_time"):
        load_recording(path, sample_rate=12000, channel="BA")


def test_csv_with_header_and_time_column_gives_rate_and_axes(tmp_path):
    rate = 3200.0
    data = tone(rate, 0.25, 100.0, axes=3)
    t = np.arange(len(data)) / rate
    path = tmp_path / "run.csv"
    rows = ["time,ax,ay,az"] + [
        f"{ti:.6f},{a:.6f},{b:.6f},{c:.6f}" for ti, (a, b, c) in zip(t, data, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    recording = load_recording(path)
    assert recording.sample_rate == pytest.approx(rate, rel=1e-3)
    assert recording.samples.shape == (len(data), 3)
    assert np.allclose(recording.samples, data, atol=1e-5)
    picked = load_recording(path, channel="az,ax").samples
    assert np.allclose(picked, data[:, [2, 0]], atol=1e-5)


def test_csv_without_header_needs_a_rate_and_reports_bad_lines(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("0.1,0.2\n0.3,0.4\n0.5,0.6\n")
    assert load_recording(path, sample_rate=1000).samples.shape == (3, 2)
    with pytest.raises(DataError, match="sample rate"):
        load_recording(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n0.1,0.2\n0.3,oops\n")
    with pytest.raises(DataError, match="line 3"):
        load_recording(bad, sample_rate=1000)


def test_npy_and_wav_load_with_their_rates(tmp_path):
    data = tone(6400, 0.2, 50.0, axes=3).astype(np.float32)
    np.save(tmp_path / "a.npy", data)
    assert np.array_equal(load_recording(tmp_path / "a.npy", sample_rate=6400).samples, data)
    pcm = (data[:, 0] * 32767).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 8000, pcm)
    recording = load_recording(tmp_path / "a.wav")
    assert recording.sample_rate == 8000
    assert np.allclose(recording.samples[:, 0], data[:, 0], atol=1e-4)


def test_broken_and_unsupported_files_raise_data_errors_naming_the_path(tmp_path):
    truncated = tmp_path / "broken.mat"
    truncated.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataError, match="broken.mat"):
        load_recording(truncated, sample_rate=12000)
    with pytest.raises(DataError, match="unsupported"):
        (tmp_path / "x.txt").write_text("1\n")
        load_recording(tmp_path / "x.txt", sample_rate=10)
    transposed = tmp_path / "t.npy"
    np.save(transposed, np.zeros((3, 1000)))
    with pytest.raises(DataError, match="transposed"):
        load_recording(transposed, sample_rate=10)


def test_resampling_keeps_a_tone_at_its_frequency(tmp_path):
    path = tmp_path / "a.mat"
    write_cwru_mat(path)
    recording = resample(load_recording(path, sample_rate=12000), 6400)
    x = recording.samples[:, 0]
    assert len(x) == 3200
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak_hz = np.fft.rfftfreq(len(x), 1 / 6400)[np.argmax(spectrum)]
    assert peak_hz == pytest.approx(157.0, abs=2.0)


def test_dataset_folder_needs_a_normal_subfolder_with_recordings(tmp_path):
    with pytest.raises(DataError, match="normal/"):
        folder_recordings(tmp_path, sample_rate=None, channel=None)
    (tmp_path / "normal").mkdir()
    with pytest.raises(DataError, match="no recordings"):
        folder_recordings(tmp_path, sample_rate=None, channel=None)
    write_cwru_mat(tmp_path / "normal" / "n.mat")
    (tmp_path / "outer_race").mkdir()
    write_cwru_mat(tmp_path / "outer_race" / "or.mat", record=130)
    recordings = folder_recordings(tmp_path, sample_rate=12000, channel=None)
    assert [r.label for r in recordings] == ["normal", "outer_race"]


def test_mat_with_one_array_and_its_rate_inside_loads_without_options(tmp_path):
    """UESTC layout: ``Data`` (n, 1), ``SampleFrequency``, a few scalars and a text stamp."""
    path = tmp_path / "N_800_1.mat"
    data = tone(20000, 0.2, 113.0)
    scipy_io.savemat(
        path,
        {
            "Data": data,
            "SampleFrequency": np.array([[20000.0]]),
            "Datacount": np.array([[len(data)]]),
            "StartTime": "19-23 00:00",
        },
    )
    recording = load_recording(path)
    assert recording.sample_rate == 20000
    assert np.allclose(recording.samples, data, atol=1e-6)
    two = tmp_path / "two.mat"
    scipy_io.savemat(two, {"acc_x": data, "acc_y": data, "fs": 20000.0})
    with pytest.raises(DataError, match="acc_x"):
        load_recording(two)
    assert load_recording(two, channel="acc_y").samples.shape == (4000, 1)


def test_one_sub_folder_per_operating_condition_is_split_in_time_as_one_recording(tmp_path):
    from training.vibration import split_windows

    for speed in ("800rpm", "1400rpm"):
        (tmp_path / "normal" / speed).mkdir(parents=True)
        for piece in range(2):  # two consecutive 1 s pieces of one record
            np.save(tmp_path / "normal" / speed / f"{piece}.npy", tone(1000, 1.0, 50.0))
    recordings = folder_recordings(tmp_path, sample_rate=1000.0, channel=None)
    assert [r.condition for r in recordings] == ["normal/1400rpm"] * 2 + ["normal/800rpm"] * 2
    splits = split_windows(recordings, 100, 50, 10)
    assert splits.conditions == ["normal/1400rpm", "normal/800rpm"]
    # per condition: 2 s → train 0-1.1 s (file 0 + 0.1 s of file 1), calibration, evaluation
    first, second = splits.train[0], splits.train[1]
    assert len(first) == len(np.arange(0, 1000 - 100 + 1, 10))
    assert len(second) == len(np.arange(0, 100 - 100 + 1, 10))
    assert sum(len(w) for w in splits.evaluation) == 2 * len(np.arange(500, 1000 - 100 + 1, 50))
