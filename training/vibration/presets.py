"""Vibration constants, per-preset data volume and the knobs `tinyfleet tune` may override."""

from __future__ import annotations

from typing import Any

TASK = "vibration"
SPLIT_FRACTIONS = (0.55, 0.20, 0.25)  # train, calibration, evaluation — in time order
DEFAULT_SAMPLE_RATE = 6400.0  # the simulator's rate
MAX_MODEL_RATE = 25_600.0  # Hz: recordings faster than this are decimated by an integer factor
DEFAULT_WINDOW_SECONDS = 0.1  # recorded data: ~5 bearing-defect impacts at 800 rpm, 10 Hz bins
FIT_HOP_DIVISOR = 32  # recorded data: train/calibration windows overlap by 31/32
INPUT_RANGE_SIGMA = 20.0  # recorded data: int8 input range ±20 sd (knocks reach 10-20 sd)

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
    "fit_hop_divisor": "int: train/calibration hop = window / this (recordings 32, simulator 2)",
    "split_fractions": "[train, calibration, evaluation] of each normal condition, in time",
    "scale_floor": "float: floor on each feature's standardisation std (raw units; default 0)",
    "augment_copies": "int: jittered copies of each training window (default 0: none)",
    "augment_stretch": "float: time-stretch jitter of those copies (0.02 = ±2 % speed)",
    "augment_gain_db": "float: gain jitter of those copies (± dB)",
    "augment_noise": "float: white noise of those copies (× window RMS)",
    "tail_quantile": "float: quantile where the threshold's POT tail starts (default 0.8)",
    "tail_confidence": "float: one-sided level of the tail scale's upper bound (default 0.95)",
    "input_range_sigma": "float: int8 input range ± this many sd (recordings 20, simulator 0: data)",
}
