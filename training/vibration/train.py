"""The vibration recipe: recordings → features → pruned dense autoencoder → calibrated threshold."""

from __future__ import annotations

import logging

import numpy as np

from device_sim.tasks.vibration import reconstruction_error
from device_sim.tasks.vibration.head import VibrationHead
from training.stage import TrainedModel, TrainOptions
from training.vibration.augment import augmented_features
from training.vibration.baselines import band_columns, baseline_scores
from training.vibration.data import feature_config_for, features_of, split_windows
from training.vibration.dense_autoencoder import dense_autoencoder
from training.vibration.evaluate import score
from training.vibration.presets import INPUT_RANGE_SIGMA, PRESETS, SPLIT_FRACTIONS, TASK
from training.vibration.recordings import load_recordings
from training.vibration.threshold import (
    TAIL_CONFIDENCE,
    TAIL_QUANTILE,
    calibrate_tail,
    residual_scale,
)

log = logging.getLogger(__name__)


def _late_half_mask(lengths: list[int]) -> np.ndarray:
    """True for the later half of each consecutive chunk of rows (chunk sizes ``lengths``)."""
    return np.concatenate([np.arange(n) >= n // 2 for n in lengths] or [np.zeros(0, dtype=bool)])


def _representative(x_train: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Training windows for int8 calibration, shuffled; with knob ``input_range_sigma`` R > 0 the
    first two rows are all -R and all +R, so the int8 input range spans ±R standard deviations
    (rare impulsive windows are then seen by the model as they are, not saturated)."""
    rows = x_train[np.random.default_rng(options.seed).permutation(len(x_train))]
    sigma = float(
        options.knob("input_range_sigma", 0.0 if options.data is None else INPUT_RANGE_SIGMA)
    )
    if sigma > 0:
        edges = np.full((2, x_train.shape[1]), sigma, dtype=x_train.dtype) * [[-1.0], [1.0]]
        rows = np.concatenate([edges.astype(x_train.dtype), rows])
    return rows


def train(options: TrainOptions) -> TrainedModel:
    """Simulator or folder → features → pruned dense autoencoder → calibrated threshold."""
    from sklearn.cluster import KMeans

    from training.fit import fit_plan, fit_pruned
    from training.keras_env import seed_everything

    seed_everything(options.seed)
    plan = PRESETS[options.preset]
    recordings, rate = load_recordings(options, options.knob("sample_rate_hz", None))
    config, fit_hop = feature_config_for(options, rate, recordings[0].samples.shape[1])
    window = config.window_samples
    fractions = tuple(float(f) for f in options.knob("split_fractions", SPLIT_FRACTIONS))
    splits = split_windows(recordings, window, config.hop_samples, fit_hop, fractions=fractions)
    raw_frontend = config.build()
    raw = {
        name: features_of(raw_frontend, getattr(splits, name))
        for name in ("train", "calibration", "evaluation")
    }
    augmented = augmented_features(
        options, recordings, raw_frontend, config.hop_samples, fit_hop, fractions
    )
    if augmented is not None:
        raw["train"] = np.concatenate([raw["train"], augmented])
    scale = np.maximum(raw["train"].std(axis=0), float(options.knob("scale_floor", 0.0)))
    config = config.with_normalization(raw["train"].mean(axis=0), scale)
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
    defaults = {"epochs": plan["epochs"], "batch_size": 64, "learning_rate": 2e-3, "sparsity": 0.5}
    fitted = fit_pruned(
        model, x_train, x_train, fit_plan(options, defaults), loss="mse", teacher=options.teacher
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.model.predict(x, verbose=0, batch_size=512))

    target_far = float(options.knob("target_false_alarm_rate", 0.005))
    overlap = window / fit_hop
    tail = {
        "tail_quantile": float(options.knob("tail_quantile", TAIL_QUANTILE)),
        "confidence": float(options.knob("tail_confidence", TAIL_CONFIDENCE)),
    }
    # each recording's calibration part, in time: first half sets the per-feature error scale,
    # the later half the threshold (held out in time from both the model and the scale)
    late = _late_half_mask([len(w) for w in splits.calibration])
    error_scale = residual_scale(x_cal[~late], predict(x_cal[~late]))
    x_threshold = x_cal[late]
    scores_cal = reconstruction_error(x_threshold, predict(x_threshold), error_scale)
    calibration = calibrate_tail(scores_cal, target_far, overlap, **tail)
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
        **{f"calibration_{k}": np.asarray(v) for k, v in tail.items()},
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
            name: calibrate_tail(values, target_far, overlap, **tail).anomaly_threshold
            for name, values in baselines_cal.items()
        },
    ).to_dict()
    trained = TrainedModel(
        task=TASK,
        name=f"vibration-ae-{config.n_features}f",
        model=fitted.model,
        feature_config=config,
        head=head,
        representative=_representative(x_train, options),
        evaluation=evaluation,
        sparsity=fitted.sparsity,
        provenance={
            "data": str(options.data) if options.data else "simulator",
            "seed": options.seed,
            "preset": options.preset,
            "history": fitted.history,
            "split": dict(zip(("train", "calibration", "evaluation"), fractions, strict=True)),
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
