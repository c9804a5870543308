"""KWS knobs per preset, the ranges `tinyfleet tune` searches, and the device's detection rule."""

from __future__ import annotations

from typing import Any

# Knobs per preset; `tinyfleet tune` overrides them by name (see SEARCH_SPACE).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "features": "mfcc",
        "n_mfcc": 10,
        "width": 32,
        "depth": 2,
        "dropout": 0.1,
        "epochs": 20,
        "batch_size": 64,
        "learning_rate": 4e-3,
        "sparsity": 0.3,
        "copies": 3,
        "keyword_renditions": 60,
        "unknown_renditions": 3,
        "fresh_augmentation": 1,
        "holdout": 1,
        "folds": 0,
        "fold": 0,
        "augment": {},  # AugmentPlan field overrides, e.g. {"noise_probability": 0.8}
    },
    "full": {
        "features": "mfcc",
        "n_mfcc": 10,
        "width": 48,
        "depth": 4,
        "dropout": 0.2,
        "epochs": 30,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "sparsity": 0.5,
        "copies": 4,
        "keyword_renditions": 150,
        "unknown_renditions": 10,
        "fresh_augmentation": 1,
        "holdout": 1,
        "folds": 0,
        "fold": 0,
        "augment": {},  # AugmentPlan field overrides, e.g. {"noise_probability": 0.8}
    },
}
SEARCH_SPACE: dict[str, Any] = {
    "width": [16, 24, 32, 48, 64],
    "depth": (1, 5),
    "dropout": (0.0, 0.4),
    "learning_rate": (5e-4, 1e-2),
    "sparsity": (0.0, 0.8),
    "copies": (1, 8),
    "n_mfcc": [10, 13, 16, 20],
    "features": ["mfcc", "log_mel"],
}
# How the device turns per-window posteriors into events (see device_sim/tasks/kws.py).
DETECTION = {
    "hop_ms": 250,
    "average_window_ms": 750,
    "threshold": 0.6,
    "suppression_ms": 1000,
    "minimum_count": 2,
}
