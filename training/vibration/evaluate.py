"""Vibration metrics (AUC headline, FAR/detection at the threshold, baselines) and ``tinyfleet evaluate``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import DataError
from device_sim.features.vibration import VibrationFeatureConfig
from device_sim.tasks.vibration import reconstruction_error
from training.stage import TrainOptions
from training.vibration.baselines import BASELINES, band_columns, baseline_scores, rms_baseline
from training.vibration.data import features_of, split_windows
from training.vibration.presets import SPLIT_FRACTIONS
from training.vibration.recordings import load_recordings

log = logging.getLogger(__name__)


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
