"""Vibration anomaly detection: a small autoencoder trained on normal windows only.

Data: the built-in simulator (:mod:`device_sim.sources.vibration_sim`) or a folder ``DIR/normal/…``
plus one sub-folder per anomalous class (``DIR/outer_race/…``), in any format of
:mod:`device_sim.sources.vibration_files`.

**Time split.** Each *normal* recording is cut by time: the first 55 % trains the model, the next
20 % calibrates the score (even windows: each feature's error scale; odd windows: the threshold),
the last 25 % evaluates it. Windows are cut inside each part, so no
window straddles a boundary and train/calibration/evaluation never share a sample. Anomalous
recordings are never trained on; all their windows are evaluation data.

**Threshold.** The anomaly score is the mean squared reconstruction error of the standardised
features, each divided by its RMS error on the training windows (``head["error_scale"]``,
:func:`device_sim.tasks.vibration.reconstruction_error`). The threshold is the
``1 - target_false_alarm_rate`` quantile of the scores of the held-out calibration windows, so the
false-alarm rate per window on normal data is about the target. :func:`calibrate_head` repeats this
for the int8 model, whose scores differ slightly from the float model's.

**Baselines** on the same features and rows: an RMS threshold (the largest standardised log-RMS
over the axes — what a vibration-level alarm does) and the distance to the nearest of k K-means
centroids fitted on the training windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import BundleError, DataError
from device_sim.features.vibration import VibrationFeatureConfig
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
from device_sim.tasks.vibration import reconstruction_error
from device_sim.tasks.vibration_head import VibrationHead
from training.stage import TrainedModel, TrainOptions
from training.vibration_threshold import calibrate_tail

log = logging.getLogger(__name__)

TASK = "vibration"
SPLIT_FRACTIONS = (0.55, 0.20, 0.25)  # train, calibration, evaluation — in time order
DEFAULT_SAMPLE_RATE = 6400.0  # the simulator's rate
MAX_MODEL_RATE = 25_600.0  # Hz: recordings faster than this are decimated by an integer factor
DEFAULT_WINDOW_SECONDS = 0.1  # recorded data: ~5 bearing-defect impacts at 800 rpm, 10 Hz bins
FIT_HOP_DIVISOR = 8  # recorded data: train/calibration windows overlap by 7/8

# Per preset: simulator data volume and training length.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "normal_recordings": 8,
        "normal_seconds": 30.0,
        "anomaly_recordings": 1,
        "anomaly_seconds": 4.0,
        "epochs": 40,
    },
    "full": {
        "normal_recordings": 30,
        "normal_seconds": 60.0,
        "anomaly_recordings": 3,
        "anomaly_seconds": 8.0,
        "epochs": 150,
    },
}

SEARCH_SPACE: dict[str, str] = {
    "width": "int 16..64: units of the outer encoder/decoder layer",
    "bottleneck": "int 4..16: code size; smaller generalises harder, reconstructs worse",
    "n_bands": "int 4..24: frequency bands per axis (8: fewer noisy features, better incipient AUC)",
    "band_scale": "'log' or 'linear' band spacing",
    "f_min": "float 10..400 Hz: lowest band edge (above ~5x the top speed, orders alone cover shaft lines)",
    "learning_rate": "float 3e-4..3e-3 (log scale)",
    "epochs": "int 20..300",
    "batch_size": "int 32..128",
    "sparsity": "float 0.0..0.8: final pruning sparsity of the dense kernels",
    "target_false_alarm_rate": "float 0.001..0.05: per-window FAR the threshold is calibrated for",
    "kmeans_clusters": "int 4..16: clusters of the K-means baseline",
    "alarm_k": "int: anomalous windows among the last alarm_n that raise the alarm (default 5)",
    "alarm_n": "int: debounce history in windows (default 8)",
}


# ---------------------------------------------------------------- data set


@dataclass
class WindowSplits:
    """Raw windows ``(b, window_samples, axes)`` per split, with labels for the evaluation split."""

    train: list[np.ndarray] = field(default_factory=list)
    calibration: list[np.ndarray] = field(default_factory=list)
    evaluation: list[np.ndarray] = field(default_factory=list)
    eval_class: list[np.ndarray] = field(default_factory=list)  # 0 = normal, i = classes[i]
    eval_severity: list[np.ndarray] = field(default_factory=list)  # NaN when unknown
    classes: list[str] = field(default_factory=lambda: ["normal"])
    eval_condition: list[np.ndarray] = field(default_factory=list)  # index into conditions
    conditions: list[str] = field(default_factory=list)  # e.g. "normal/N_800", "ball/B_800_1"


def split_by_time(
    n_samples: int, fractions: tuple[float, ...] = SPLIT_FRACTIONS
) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping ``[start, stop)`` sample ranges in time order."""
    bounds = np.round(np.cumsum((0.0,) + tuple(fractions)) / sum(fractions) * n_samples)
    bounds = bounds.astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def window_starts(start: int, stop: int, window: int, hop: int) -> np.ndarray:
    """Start indices of every full window inside ``[start, stop)``: none crosses ``stop``."""
    if stop - start < window:
        return np.zeros(0, dtype=int)
    return np.arange(start, stop - window + 1, hop)


def cut_windows(samples: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Windows ``(len(starts), window, axes)`` as a view where possible."""
    if len(starts) == 0:
        return np.zeros((0, window, samples.shape[1]), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(samples, window, axis=0)
    return np.transpose(view[starts], (0, 2, 1))


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


def _condition_groups(recordings: list[Recording]) -> list[list[Recording]]:
    """Recordings grouped by operating condition, in file order (pieces of one recording)."""
    groups: dict[str, list[Recording]] = {}
    for index, recording in enumerate(recordings):
        groups.setdefault(recording.condition or f"#{index}", []).append(recording)
    return list(groups.values())


def split_windows(
    recordings: list[Recording],
    window: int,
    hop: int,
    fit_hop: int | None = None,
    *,
    fractions: tuple[float, ...] = SPLIT_FRACTIONS,
    require_fit: bool = True,
) -> WindowSplits:
    """Cut windows: normal data by time into train/calibration/evaluation, the rest evaluation.

    The time split runs over each operating condition's files taken in order (they are
    consecutive pieces of one recording), so every condition is in every part. Train and
    calibration windows overlap with ``fit_hop`` samples (default ``hop``): a short record then
    still gives hundreds of windows. Evaluation windows use ``hop``, the device's.
    ``fractions=(0, 0, 1), require_fit=False`` makes every normal window evaluation data.
    """
    fit_hop = fit_hop or hop
    splits = WindowSplits()
    classes = ["normal"] + sorted({r.label for r in recordings if r.label != "normal"})
    splits.classes = classes
    conditions: list[str] = []
    for group in _condition_groups(recordings):
        name = group[0].condition or group[0].origin
        conditions.append(name)
        condition_index = len(conditions) - 1
        if group[0].label != "normal":
            for recording in group:
                windows = cut_windows(
                    recording.samples, window_starts(0, len(recording.samples), window, hop), window
                )
                splits.evaluation.append(windows)
                splits.eval_class.append(
                    np.full(len(windows), classes.index(recording.label), dtype=np.int32)
                )
                splits.eval_severity.append(np.full(len(windows), recording.severity))
                splits.eval_condition.append(np.full(len(windows), condition_index))
            continue
        total = sum(len(r.samples) for r in group)
        parts = split_by_time(total, fractions)
        targets = (splits.train, splits.calibration, splits.evaluation)
        offset = 0
        for recording in group:
            n = len(recording.samples)
            for (start, stop), target in zip(parts, targets, strict=True):
                lo, hi = max(start - offset, 0), min(stop - offset, n)
                step = hop if target is splits.evaluation else fit_hop
                windows = cut_windows(
                    recording.samples, window_starts(lo, hi, window, step), window
                )
                target.append(windows)
                if target is splits.evaluation:
                    splits.eval_class.append(np.zeros(len(windows), dtype=np.int32))
                    splits.eval_severity.append(np.zeros(len(windows)))
                    splits.eval_condition.append(np.full(len(windows), condition_index))
            offset += n
    splits.conditions = conditions
    n_train = sum(len(w) for w in splits.train)
    n_cal = sum(len(w) for w in splits.calibration)
    if require_fit and (n_train < 32 or n_cal < 8):
        seconds = window / recordings[0].sample_rate
        raise DataError(
            f"only {n_train} training and {n_cal} calibration windows of {seconds:.2f} s: record "
            "more normal data under normal/ (at least ~2 s per operating condition)"
        )
    return splits


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


def features_of(frontend, windows: list[np.ndarray], batch: int = 512) -> np.ndarray:
    """Front-end features of many windows, in batches to bound memory."""
    chunks = [w[i : i + batch] for w in windows for i in range(0, len(w), batch) if len(w)]
    if not chunks:
        return np.zeros((0,) + frontend.feature_shape, dtype=np.float32)
    return np.concatenate([frontend.batch(c) for c in chunks])


# ---------------------------------------------------------------- model


def dense_autoencoder(n_features: int, width: int = 32, bottleneck: int = 8):
    """``n → width → width/2 → bottleneck → width/2 → width → n`` ReLU autoencoder, linear output.

    Dense layers only: every TFLM build has them, and at ~60 features the int8 model is a few KB.
    """
    from training.keras_env import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    x = keras.layers.Dense(width, activation="relu", name="enc1")(inputs)
    x = keras.layers.Dense(max(width // 2, bottleneck), activation="relu", name="enc2")(x)
    x = keras.layers.Dense(bottleneck, activation="relu", name="code")(x)
    x = keras.layers.Dense(max(width // 2, bottleneck), activation="relu", name="dec2")(x)
    x = keras.layers.Dense(width, activation="relu", name="dec1")(x)
    outputs = keras.layers.Dense(n_features, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="vibration_autoencoder")


# ---------------------------------------------------------------- scoring


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when one of the classes is missing."""
    from sklearn.metrics import roc_auc_score

    if labels.all() or not labels.any():
        return None
    return round(float(roc_auc_score(labels, scores)), 5)


def score(
    predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray], head: dict
) -> dict[str, Any]:
    """AUC (headline), FAR and detection rate at the head's threshold, per class, baselines."""
    x = evaluation["x"]
    scores = reconstruction_error(x, predict(x), head.get("error_scale"))
    return metrics_from_scores(scores, evaluation, head)


def metrics_from_scores(
    scores: np.ndarray, evaluation: dict[str, np.ndarray], head: dict
) -> dict[str, Any]:
    """:func:`score` for anomaly scores already computed (one per evaluation row)."""
    classes = list(head["classes"])
    class_index = evaluation["class_index"]
    severity = evaluation["severity"]
    anomalous = class_index > 0
    threshold = float(head["anomaly_threshold"])
    flagged = scores > threshold
    result: dict[str, Any] = {
        "auc": _auc(anomalous, scores),
        "false_alarm_rate": round(float(flagged[~anomalous].mean()), 5),
        "detection_rate": round(float(flagged[anomalous].mean()), 5) if anomalous.any() else None,
        "per_class": {
            name: round(float(flagged[class_index == i].mean()), 5)
            for i, name in enumerate(classes)
            if i > 0 and np.any(class_index == i)
        },
        "threshold": threshold,
        "target_false_alarm_rate": head["target_false_alarm_rate"],
    }
    known = anomalous & np.isfinite(severity)
    if known.any():
        by_severity = {}
        for level in sorted(set(severity[known].tolist())):
            rows = ~anomalous | (known & (severity == level))
            by_severity[f"{level:g}"] = _auc(anomalous[rows], scores[rows])
        result["auc_by_severity"] = by_severity
        result["auc_smallest_severity"] = by_severity[min(by_severity, key=float)]
        smallest = float(np.min(severity[known]))
        result["auc_smallest_severity_by_class"] = {
            name: _auc(anomalous[rows], scores[rows])
            for i, name in enumerate(classes)
            if i > 0
            for rows in [~anomalous | ((class_index == i) & (severity == smallest))]
            if np.any((class_index == i) & (severity == smallest))
        }
    baseline_thresholds = head.get("baseline_thresholds") or {}
    for name in BASELINES:
        key = f"baseline_{name}"
        if key in evaluation:
            result[f"{key}_auc"] = _auc(anomalous, evaluation[key])
            if name in baseline_thresholds:
                over = evaluation[key] > baseline_thresholds[name]
                result[f"{key}_false_alarm_rate"] = round(float(over[~anomalous].mean()), 5)
                if anomalous.any():
                    result[f"{key}_detection_rate"] = round(float(over[anomalous].mean()), 5)
    if "condition_index" in evaluation and "condition_names" in evaluation:
        names = [str(n) for n in evaluation["condition_names"]]
        condition = evaluation["condition_index"]
        # normal conditions: false-alarm rate; fault recordings: detection rate
        result["per_condition"] = {
            names[int(c)]: round(float(flagged[condition == c].mean()), 5)
            for c in np.unique(condition)
        }
    for key in (
        "expected_false_alarm_rate",
        "false_alarm_rate_upper_95",
    ):
        if key in head:
            result[key] = head[key]
    result["n_normal"] = int((~anomalous).sum())
    result["n_anomalous"] = int(anomalous.sum())
    return result


def calibrate_head(
    predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray], head: dict
) -> dict:
    """The head with ``anomaly_threshold`` re-calibrated for ``predict`` (e.g. the int8 model).

    The float model's threshold is kept as ``float_anomaly_threshold``.
    """
    x_cal = evaluation["x_calibration"]
    scores = reconstruction_error(x_cal, predict(x_cal), head.get("error_scale"))
    overlap = float(evaluation.get("calibration_overlap", 1.0))
    calibration = calibrate_tail(scores, float(head["target_false_alarm_rate"]), overlap)
    return {
        **head,
        **calibration.to_dict(),
        "float_anomaly_threshold": head.get("float_anomaly_threshold") or head["anomaly_threshold"],
    }


def residual_scale(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-feature RMS reconstruction error on normal windows (the score's ``error_scale``).

    Floored at one int8 output step (output range / 255) and 0.02 so that a feature the float
    model reconstructs almost perfectly does not turn int8 rounding into false alarms.
    """
    rms = np.sqrt(np.mean((x - reconstruction) ** 2, axis=0))
    step = float(reconstruction.max() - reconstruction.min()) / 255
    return np.maximum(rms, max(step, 0.02)).astype(np.float32)


BASELINES = ("rms", "kurtosis", "kmeans")


def stat_baseline(features: np.ndarray, config: VibrationFeatureConfig, stat: str) -> np.ndarray:
    """``exp`` of the largest standardised statistic (log RMS, log kurtosis) over the axes: a
    plain vibration-level or impulsiveness alarm (exp keeps the order and makes it positive)."""
    if stat not in config.stats:
        return np.exp(np.clip(features.max(axis=1), -50, 50))
    index = config.n_bands + list(config.stats).index(stat)
    columns = [axis * config.features_per_axis + index for axis in range(config.axes)]
    return np.exp(np.clip(features[:, columns].max(axis=1), -50, 50))


def rms_baseline(features: np.ndarray, config: VibrationFeatureConfig) -> np.ndarray:
    """Largest standardised log-RMS over the axes (as ``exp``): a vibration-level alarm."""
    return stat_baseline(features, config, "rms")


def band_columns(config: VibrationFeatureConfig) -> np.ndarray:
    """Indices of the log band energies of every axis in the feature vector."""
    return np.concatenate(
        [axis * config.features_per_axis + np.arange(config.n_bands) for axis in range(config.axes)]
    )


def baseline_scores(
    features: np.ndarray, config: VibrationFeatureConfig, centroids: np.ndarray
) -> dict[str, np.ndarray]:
    """Baseline scores on the same standardised rows: RMS level, kurtosis, and the Edge Impulse
    anomaly block (distance to the nearest K-means centroid of the log band energies)."""
    return {
        "rms": stat_baseline(features, config, "rms"),
        "kurtosis": stat_baseline(features, config, "kurtosis"),
        "kmeans": kmeans_baseline(features[:, band_columns(config)], centroids),
    }


def kmeans_baseline(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance to the nearest training centroid (standardised feature units)."""
    distances = np.linalg.norm(features[:, None, :] - centroids[None, :, :], axis=-1)
    return distances.min(axis=1)


# ---------------------------------------------------------------- train / evaluate


def feature_config_for(
    options: TrainOptions, rate: float, axes: int
) -> tuple[VibrationFeatureConfig, int]:
    """The front end for this data and the hop (samples) of train/calibration windows.

    Simulator: 0.64 s windows with shaft orders (speed/load changes are the hard part there).
    Recordings: ~0.1 s windows up to the Nyquist frequency (bearing resonances), 16 log bands,
    windows overlapping 7/8 for training so that 5 s per condition give ~400 windows; shaft orders
    only when the window resolves them (they need ~0.3 s or more).
    """
    simulated = options.data is None
    if simulated:
        window = int(options.knob("window_samples", 4096 if rate >= 4000 else 2048))
    else:
        seconds = float(options.knob("window_seconds", DEFAULT_WINDOW_SECONDS))
        window = int(options.knob("window_samples", window_for(rate, seconds)))
    resolution = rate / window
    settings = dict(
        sample_rate=rate,
        window_samples=window,
        hop_samples=window // 2,
        axes=axes,
        n_bands=int(options.knob("n_bands", 8 if simulated else 16)),
        band_scale=str(options.knob("band_scale", "log")),
        f_min=float(options.knob("f_min", 10.0 if simulated else max(10.0, 2 * resolution))),
        f_max=rate / 2,
        hf_cutoff_hz=min(1000.0, rate / 4),
    )
    try:
        config = VibrationFeatureConfig(**settings)
    except BundleError:
        if simulated:
            raise
        config = VibrationFeatureConfig(**settings, orders=())
    divisor = 2 if simulated else FIT_HOP_DIVISOR
    fit_hop = max(1, window // int(options.knob("fit_hop_divisor", divisor)))
    return config, fit_hop


def _late_half_mask(lengths: list[int]) -> np.ndarray:
    """True for the later half of each consecutive chunk of rows (chunk sizes ``lengths``)."""
    return np.concatenate([np.arange(n) >= n // 2 for n in lengths] or [np.zeros(0, dtype=bool)])


def train(options: TrainOptions) -> TrainedModel:
    """Simulator or folder → features → pruned dense autoencoder → calibrated threshold."""
    from sklearn.cluster import KMeans

    from training.fit import FitPlan, fit_pruned
    from training.keras_env import seed_everything
    from training.pruning import PruningPlan

    seed_everything(options.seed)
    plan = PRESETS[options.preset]
    recordings, rate = load_recordings(options, options.knob("sample_rate_hz", None))
    config, fit_hop = feature_config_for(options, rate, recordings[0].samples.shape[1])
    window = config.window_samples
    splits = split_windows(recordings, window, config.hop_samples, fit_hop)
    raw_frontend = config.build()
    raw = {
        name: features_of(raw_frontend, getattr(splits, name))
        for name in ("train", "calibration", "evaluation")
    }
    config = config.with_normalization(raw["train"].mean(axis=0), raw["train"].std(axis=0))
    # exactly what the normalising front end computes, without running the FFTs again
    mean, scale = np.asarray(config.mean), np.asarray(config.scale)
    x_train, x_cal, x_eval = (
        ((raw[name].astype(np.float64) - mean) / scale).astype(np.float32)
        for name in ("train", "calibration", "evaluation")
    )
    log.info(
        "vibration: %d train, %d calibration, %d evaluation windows of %d samples at %g Hz",
        len(x_train),
        len(x_cal),
        len(x_eval),
        window,
        rate,
    )

    model = dense_autoencoder(
        config.n_features,
        width=int(options.knob("width", 32)),
        bottleneck=int(options.knob("bottleneck", 8)),
    )
    fit_plan = FitPlan(
        epochs=int(options.knob("epochs", plan["epochs"])),
        batch_size=int(options.knob("batch_size", 64)),
        learning_rate=float(options.knob("learning_rate", 2e-3)),
        pruning=PruningPlan(target_sparsity=float(options.knob("sparsity", 0.5))),
    )
    fitted = fit_pruned(model, x_train, x_train, fit_plan, loss="mse", teacher=options.teacher)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.model.predict(x, verbose=0, batch_size=512))

    target_far = float(options.knob("target_false_alarm_rate", 0.005))
    overlap = window / fit_hop
    # each recording's calibration part, in time: first half sets the per-feature error scale,
    # the later half the threshold (held out in time from both the model and the scale)
    late = _late_half_mask([len(w) for w in splits.calibration])
    error_scale = residual_scale(x_cal[~late], predict(x_cal[~late]))
    x_threshold = x_cal[late]
    scores_cal = reconstruction_error(x_threshold, predict(x_threshold), error_scale)
    calibration = calibrate_tail(scores_cal, target_far, overlap)
    n_clusters = int(options.knob("kmeans_clusters", 8))
    bands = band_columns(config)
    kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=options.seed).fit(
        x_train[:, bands]
    )
    centroids = kmeans.cluster_centers_.astype(np.float32)
    baselines_eval = baseline_scores(x_eval, config, centroids)
    baselines_cal = baseline_scores(x_threshold, config, centroids)
    evaluation = {
        "x": x_eval,
        "class_index": np.concatenate(splits.eval_class),
        "severity": np.concatenate(splits.eval_severity),
        "condition_index": np.concatenate(splits.eval_condition),
        "condition_names": np.asarray(splits.conditions, dtype=str),
        "x_calibration": x_threshold,
        "calibration_overlap": np.asarray(overlap),
        **{f"baseline_{k}": v for k, v in baselines_eval.items()},
    }
    head = VibrationHead(
        **calibration.to_dict(),
        error_scale=tuple(float(v) for v in error_scale),
        classes=tuple(splits.classes),
        feature_names=tuple(config.feature_names()),
        feature_ranges_hz=tuple(config.feature_ranges_hz()),
        feature_orders=tuple(config.feature_orders()),
        alarm_k=int(options.knob("alarm_k", 5)),
        alarm_n=int(options.knob("alarm_n", 8)),
        baseline_thresholds={
            name: calibrate_tail(values, target_far, overlap).anomaly_threshold
            for name, values in baselines_cal.items()
        },
    ).to_dict()
    trained = TrainedModel(
        task=TASK,
        name=f"vibration-ae-{config.n_features}f",
        model=fitted.model,
        feature_config=config,
        head=head,
        representative=x_train[np.random.default_rng(options.seed).permutation(len(x_train))],
        evaluation=evaluation,
        sparsity=fitted.sparsity,
        provenance={
            "data": str(options.data) if options.data else "simulator",
            "seed": options.seed,
            "preset": options.preset,
            "history": fitted.history,
            "split": dict(
                zip(("train", "calibration", "evaluation"), SPLIT_FRACTIONS, strict=True)
            ),
            "fit_hop_samples": fit_hop,
            "windows": {
                "train": len(x_train),
                "calibration": len(x_cal),
                "evaluation": len(x_eval),
            },
            "fit_seconds": round(fitted.seconds, 1),
            "hyperparameters": dict(options.hyperparameters),
        },
        extra={"baseline_kmeans_centroids": centroids.tolist()},
    )
    trained.metrics_float = score(predict, evaluation, head)
    return trained


def evaluate(
    bundle: Bundle,
    data: Path | None,
    options: TrainOptions,
    *,
    normal_fractions: tuple[float, ...] = SPLIT_FRACTIONS,
) -> dict[str, Any]:
    """The bundle's int8 model on a folder (evaluation part of normal recordings + all faults) or
    freshly simulated data (seed ``options.seed``); writes ``roc.png`` beside the bundle.

    ``normal_fractions=(0, 0, 1)`` scores every normal window (data the bundle never saw)."""
    from device_sim.features import feature_config_from_dict
    from device_sim.interpreter import Int8Model

    config = feature_config_from_dict(bundle.feature_config)
    assert isinstance(config, VibrationFeatureConfig)
    eval_options = TrainOptions(
        data=data,
        preset=options.preset,
        seed=options.seed,
        sample_rate=options.sample_rate,
        channel=options.channel,
    )
    recordings, _ = load_recordings(eval_options, config.sample_rate)
    if recordings[0].samples.shape[1] != config.axes:
        raise DataError(
            f"the recordings have {recordings[0].samples.shape[1]} axes but the bundle's model "
            f"expects {config.axes}: pick matching channels with --channel"
        )
    splits = split_windows(
        recordings,
        config.window_samples,
        config.hop_samples,
        fractions=normal_fractions,
        require_fit=False,
    )
    frontend = config.build()
    x_eval = features_of(frontend, splits.evaluation)
    class_index = np.concatenate(splits.eval_class)
    head = dict(bundle.head)
    unknown = [c for c in splits.classes[1:] if c not in head["classes"]]
    head["classes"] = splits.classes
    evaluation = {
        "x": x_eval,
        "class_index": class_index,
        "severity": np.concatenate(splits.eval_severity),
        "condition_index": np.concatenate(splits.eval_condition),
        "condition_names": np.asarray(splits.conditions, dtype=str),
    }
    centroids = bundle.extra.get("baseline_kmeans_centroids")
    if centroids and np.shape(centroids)[1] == len(band_columns(config)):
        baselines = baseline_scores(x_eval, config, np.asarray(centroids))
        evaluation.update({f"baseline_{k}": v for k, v in baselines.items()})
    else:  # a bundle from before the band-only K-means baseline
        evaluation["baseline_rms"] = rms_baseline(x_eval, config)
    model = Int8Model.from_bundle(bundle)
    scores = reconstruction_error(x_eval, model.predict_batch(x_eval), head.get("error_scale"))
    result = metrics_from_scores(scores, evaluation, head)
    result["data"] = str(data) if data else f"simulator (seed {options.seed})"
    if unknown:
        result["classes_not_seen_in_training"] = unknown
    result["roc_png"] = str(
        _plot_roc(bundle.directory / "roc.png", class_index > 0, scores, evaluation)
    )
    return result


def _plot_roc(path: Path, labels: np.ndarray, scores: np.ndarray, evaluation: dict) -> Path | None:
    """ROC curves of the model and the baselines (matplotlib, headless)."""
    if labels.all() or not labels.any():
        log.warning("no ROC plot: the evaluation data needs both normal and anomalous windows")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axis = plt.subplots(figsize=(5, 5))
    curves = {"autoencoder (int8)": scores}
    curves.update(
        {
            k.replace("baseline_", "baseline: "): v
            for k, v in evaluation.items()
            if k.startswith("baseline_")
        }
    )
    for name, values in curves.items():
        fpr, tpr, _ = roc_curve(labels, values)
        axis.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, values):.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("false-alarm rate (normal windows)")
    axis.set_ylabel("detection rate (anomalous windows)")
    axis.set_title("Vibration anomaly ROC")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
