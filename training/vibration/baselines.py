"""Model-free anomaly scores on the same standardised rows as the autoencoder's."""

from __future__ import annotations

import numpy as np

from device_sim.features.vibration import VibrationFeatureConfig

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
