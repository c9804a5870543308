"""Recordings to train on: the seeded simulator, or a folder of real ones resampled for the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_sim.errors import DataError
from device_sim.sources.vibration_files import (
    Recording,
    list_recordings,
    load_recording,
    resample,
)
from device_sim.sources.vibration_sim import (
    FAULT_KINDS,
    SEVERITIES,
    SimulatorConfig,
    simulate_recording,
)
from training.stage import TrainOptions
from training.vibration.presets import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_WINDOW_SECONDS,
    MAX_MODEL_RATE,
    PRESETS,
)


def simulator_recordings(preset: str, seed: int, sample_rate: float) -> list[Recording]:
    """Normal recordings and anomalous ones (every fault kind × severity), all seeded."""
    plan = PRESETS[preset]
    config = SimulatorConfig(sample_rate=sample_rate)
    recordings = []
    for i in range(plan["normal_recordings"]):
        samples = simulate_recording(plan["normal_seconds"], seed=seed * 1000 + i, config=config)
        recordings.append(Recording(samples, sample_rate, f"sim normal #{i}"))
    index = 500
    for kind in FAULT_KINDS:
        for severity in SEVERITIES.values():
            for _ in range(plan["anomaly_recordings"]):
                index += 1
                samples = simulate_recording(
                    plan["anomaly_seconds"],
                    kind=kind,
                    severity=severity,
                    seed=seed * 1000 + index,
                    config=config,
                )
                recordings.append(
                    Recording(samples, sample_rate, f"sim {kind}@{severity}", kind, severity)
                )
    return recordings


def folder_recordings(
    folder: Path, *, sample_rate: float | None, channel: str | None
) -> list[Recording]:
    """``folder/normal/*`` and ``folder/<class>/*`` (or a single file: normal only)."""
    if folder.is_file():
        recording = load_recording(folder, sample_rate=sample_rate, channel=channel)
        recording.condition = f"normal/{folder.stem}"
        return [recording]
    normal = folder / "normal"
    if not normal.is_dir():
        raise DataError(
            f"{folder} has no normal/ sub-folder: put healthy recordings in {normal}/ and each "
            "fault class in its own sub-folder (e.g. outer_race/); see docs/vibration.md"
        )
    recordings = []
    class_dirs = [normal] + sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name != "normal" and not p.name.startswith(".")
    )
    for class_dir in class_dirs:
        # files directly in the class folder are separate recordings (each its own condition);
        # a sub-folder is one operating condition whose files are consecutive pieces in time
        groups = [(path, path.stem) for path in list_recordings(class_dir)]
        for sub in sorted(p for p in class_dir.iterdir() if p.is_dir() and p.name[0] != "."):
            groups += [(path, sub.name) for path in list_recordings(sub)]
        if class_dir == normal and not groups:
            raise DataError(
                f"{normal} holds no recordings (.mat, .csv, .npy, .wav): add healthy recordings "
                "(directly, or one sub-folder per operating condition)"
            )
        for path, condition in groups:
            recording = load_recording(path, sample_rate=sample_rate, channel=channel)
            recording.label = class_dir.name
            recording.condition = f"{class_dir.name}/{condition}"
            recordings.append(recording)
    axes = {r.samples.shape[1] for r in recordings}
    if len(axes) > 1:
        raise DataError(
            f"recordings under {folder} have different channel counts {sorted(axes)}: every "
            "recording must have the same axes (use --channel to pick the same ones)"
        )
    return recordings


def model_rate_for(recording_rate: float) -> float:
    """The model's rate (Hz) for recordings at ``recording_rate``: theirs, or an integer fraction
    of it at most :data:`MAX_MODEL_RATE`.

    Bearing impacts ring housing resonances at 2-10 kHz; on the UESTC rig (20 kHz) ball-fault
    windows lose AUC when resampled to 10 kHz (0.9999 vs 1.0 with K-means), so the rate is kept
    as high as a small MCU front end affords. Never upsampled.
    """
    factor = int(np.ceil(recording_rate / MAX_MODEL_RATE - 1e-9))
    return recording_rate / max(factor, 1)


def window_for(rate: float, seconds: float = DEFAULT_WINDOW_SECONDS) -> int:
    """The power-of-two window (samples) closest to ``seconds`` at ``rate`` Hz (FFT-friendly)."""
    return int(2 ** np.round(np.log2(max(seconds * rate, 64))))


def load_recordings(
    options: TrainOptions, model_rate: float | None = None
) -> tuple[list[Recording], float]:
    """The recordings for ``options`` and the model's sample rate (Hz) they were resampled to."""
    if options.data is None:
        rate = float(model_rate or DEFAULT_SAMPLE_RATE)
        return simulator_recordings(options.preset, options.seed, rate), rate
    recordings = folder_recordings(
        Path(options.data), sample_rate=options.sample_rate, channel=options.channel
    )
    if model_rate is None:
        model_rate = model_rate_for(min(r.sample_rate for r in recordings))
    return [resample(r, model_rate) for r in recordings], float(model_rate)
