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
from device_sim.errors import DataError
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
from training.stage import TrainedModel, TrainOptions

log = logging.getLogger(__name__)

TASK = "vibration"
SPLIT_FRACTIONS = (0.55, 0.20, 0.25)  # train, calibration, evaluation — in time order
DEFAULT_SAMPLE_RATE = 6400.0

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
        files = list_recordings(class_dir)
        if class_dir == normal and not files:
            raise DataError(
                f"{normal} holds no recordings (.mat, .csv, .npy, .wav): add healthy recordings"
            )
        for path in files:
            recording = load_recording(path, sample_rate=sample_rate, channel=channel)
            recording.label = class_dir.name
            recordings.append(recording)
    axes = {r.samples.shape[1] for r in recordings}
    if len(axes) > 1:
        raise DataError(
            f"recordings under {folder} have different channel counts {sorted(axes)}: every "
            "recording must have the same axes (use --channel to pick the same ones)"
        )
    return recordings


def split_windows(recordings: list[Recording], window: int, hop: int) -> WindowSplits:
    """Cut windows: normal recordings by time into train/calibration/evaluation, the rest eval."""
    splits = WindowSplits()
    classes = ["normal"] + sorted({r.label for r in recordings if r.label != "normal"})
    splits.classes = classes
    for recording in recordings:
        samples = recording.samples
        if recording.label == "normal":
            parts = split_by_time(len(samples))
            targets = (splits.train, splits.calibration, splits.evaluation)
            for (start, stop), target in zip(parts, targets, strict=True):
                windows = cut_windows(samples, window_starts(start, stop, window, hop), window)
                target.append(windows)
                if target is splits.evaluation:
                    splits.eval_class.append(np.zeros(len(windows), dtype=np.int32))
                    splits.eval_severity.append(np.zeros(len(windows)))
        else:
            windows = cut_windows(samples, window_starts(0, len(samples), window, hop), window)
            splits.evaluation.append(windows)
            splits.eval_class.append(
                np.full(len(windows), classes.index(recording.label), dtype=np.int32)
            )
            splits.eval_severity.append(np.full(len(windows), recording.severity))
    n_train = sum(len(w) for w in splits.train)
    n_cal = sum(len(w) for w in splits.calibration)
    if n_train < 32 or n_cal < 8:
        seconds = window / recordings[0].sample_rate
        raise DataError(
            f"only {n_train} training and {n_cal} calibration windows of {seconds:.2f} s: record "
            "more normal data (at least ~2 minutes in total) under normal/"
        )
    return splits


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
        # never upsample: a 3.2 kHz sensor stays at 3.2 kHz; faster recordings come down to 6.4 kHz
        model_rate = min(DEFAULT_SAMPLE_RATE, min(r.sample_rate for r in recordings))
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


def calibrate_threshold(scores: np.ndarray, target_far: float) -> float:
    """The smallest observed score that keeps at most ``target_far`` of ``scores`` above it."""
    if len(scores) == 0:
        raise DataError("no calibration windows to set the anomaly threshold from")
    return float(np.quantile(scores, 1.0 - target_far, method="higher"))


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
    for name in ("rms", "kmeans"):
        key = f"baseline_{name}"
        if key in evaluation:
            result[f"{key}_auc"] = _auc(anomalous, evaluation[key])
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
    threshold = calibrate_threshold(scores, float(head["target_false_alarm_rate"]))
    return {
        **head,
        "float_anomaly_threshold": head.get("float_anomaly_threshold", head["anomaly_threshold"]),
        "anomaly_threshold": threshold,
    }


def residual_scale(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-feature RMS reconstruction error on normal windows (the score's ``error_scale``).

    Floored at one int8 output step (output range / 255) and 0.02 so that a feature the float
    model reconstructs almost perfectly does not turn int8 rounding into false alarms.
    """
    rms = np.sqrt(np.mean((x - reconstruction) ** 2, axis=0))
    step = float(reconstruction.max() - reconstruction.min()) / 255
    return np.maximum(rms, max(step, 0.02)).astype(np.float32)


def rms_baseline(features: np.ndarray, config: VibrationFeatureConfig) -> np.ndarray:
    """Largest standardised log-RMS over the axes: a plain vibration-level alarm."""
    if "rms" not in config.stats:
        return features.max(axis=1)
    index = config.n_bands + list(config.stats).index("rms")
    columns = [axis * config.features_per_axis + index for axis in range(config.axes)]
    return features[:, columns].max(axis=1)


def kmeans_baseline(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance to the nearest training centroid (standardised feature units)."""
    distances = np.linalg.norm(features[:, None, :] - centroids[None, :, :], axis=-1)
    return distances.min(axis=1)


# ---------------------------------------------------------------- train / evaluate


def train(options: TrainOptions) -> TrainedModel:
    """Simulator or folder → features → pruned dense autoencoder → calibrated threshold."""
    from sklearn.cluster import KMeans

    from training.fit import FitPlan, fit_pruned
    from training.keras_env import seed_everything
    from training.pruning import PruningPlan

    seed_everything(options.seed)
    plan = PRESETS[options.preset]
    recordings, rate = load_recordings(options, options.knob("sample_rate_hz", None))
    axes = recordings[0].samples.shape[1]
    window = int(options.knob("window_samples", 4096 if rate >= 4000 else 2048))
    config = VibrationFeatureConfig(
        sample_rate=rate,
        window_samples=window,
        hop_samples=window // 2,
        axes=axes,
        n_bands=int(options.knob("n_bands", 8)),
        band_scale=str(options.knob("band_scale", "log")),
        f_min=float(options.knob("f_min", 10.0)),
        f_max=rate / 2,
        hf_cutoff_hz=min(1000.0, rate / 4),
    )
    splits = split_windows(recordings, window, config.hop_samples)
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
    # held-out normal windows, so the scale includes the model's generalisation error
    error_scale = residual_scale(x_cal[0::2], predict(x_cal[0::2]))
    scores_cal = reconstruction_error(x_cal[1::2], predict(x_cal[1::2]), error_scale)
    threshold = calibrate_threshold(scores_cal, target_far)
    n_clusters = int(options.knob("kmeans_clusters", 8))
    kmeans = KMeans(n_clusters=n_clusters, n_init=4, random_state=options.seed).fit(x_train)
    centroids = kmeans.cluster_centers_.astype(np.float32)
    evaluation = {
        "x": x_eval,
        "class_index": np.concatenate(splits.eval_class),
        "severity": np.concatenate(splits.eval_severity),
        "x_calibration": x_cal[1::2],  # the threshold half
        "baseline_rms": rms_baseline(x_eval, config),
        "baseline_kmeans": kmeans_baseline(x_eval, centroids),
    }
    head = {
        "anomaly_threshold": threshold,
        "target_false_alarm_rate": target_far,
        "score": "mean(((features - output) / error_scale)^2) over the standardised features",
        "error_scale": error_scale,
        "classes": splits.classes,
        "feature_names": config.feature_names(),
        "feature_ranges_hz": config.feature_ranges_hz(),
        "feature_orders": config.feature_orders(),
        "alarm_k": int(options.knob("alarm_k", 5)),
        "alarm_n": int(options.knob("alarm_n", 8)),
    }
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


def evaluate(bundle: Bundle, data: Path | None, options: TrainOptions) -> dict[str, Any]:
    """The bundle's int8 model on a folder (evaluation part of normal recordings + all faults) or
    freshly simulated data (seed ``options.seed``); writes ``roc.png`` beside the bundle."""
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
    splits = split_windows(recordings, config.window_samples, config.hop_samples)
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
        "baseline_rms": rms_baseline(x_eval, config),
    }
    centroids = bundle.extra.get("baseline_kmeans_centroids")
    if centroids:
        evaluation["baseline_kmeans"] = kmeans_baseline(x_eval, np.asarray(centroids))
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
