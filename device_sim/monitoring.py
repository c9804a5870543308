"""The reference statistics a bundle carries for ``tinyfleet monitor`` (``bundle.extra["monitoring"]``).

Why here, in the runtime: the quantize stage writes them at build time (so every bundle a device
receives carries them), and ``tinyfleet monitor`` (ops, which imports only the runtime) computes
them for older bundles; both call :func:`record_reference`. What the statistics *are* is the task's
business: its ``TaskSpec.drift`` (:class:`~device_sim.tasks.spec.DriftStatistics`) returns, per
statistic, the values its int8 model gives on the held-out set. This module only summarises them:

* a continuous statistic (anomaly score, top-class probability, an estimate): its deciles, for a
  PSI over 10 equal-mass bins, and a sorted sample of :data:`REFERENCE_SAMPLE` values for a
  two-sample Kolmogorov–Smirnov test;
* a categorical one (a label): the share of each category.

The share of windows the device could not infer is compared too: ``invalid_rate`` is 0 unless the
evaluation arrays carry the share of windows the task's data left uninferable (``invalid_rate``,
air quality: windows with a missing input).

Format (``schema`` 2)::

    {"schema": 2, "source": "...", "invalid_rate": 0.0, "windows": 812,
     "statistics": {"confidence": {"kind": "continuous", "decile_edges": [...],
                                   "bin_shares": [...], "sample": [...], "count": 812},
                    "label": {"kind": "categorical", "categories": {"yes": 0.09, ...},
                              "count": 812}}}

Schema 1 (vibration only, written by the first ``tinyfleet monitor``) is read by
:func:`normalise_reference`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle, update_bundle
from device_sim.errors import ConfigError

log = logging.getLogger(__name__)

MONITORING_KEY = "monitoring"
EVALUATION_FILE = "evaluation.npz"
REFERENCE_SAMPLE = 500
MIN_REFERENCE_VALUES = 20
DECILES = np.linspace(0.1, 0.9, 9)


def continuous_reference(values: Any) -> dict[str, Any]:
    """Deciles and a sorted sample of ``values`` (NaN/inf dropped)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) < MIN_REFERENCE_VALUES:
        raise ConfigError(
            f"a monitoring reference needs >= {MIN_REFERENCE_VALUES} values, got {len(values)}"
        )
    rng = np.random.default_rng(0)
    sample = rng.choice(values, size=min(REFERENCE_SAMPLE, len(values)), replace=False)
    # Ties (an int8 output saturates: many windows at the same top probability) merge deciles, so
    # the bins are the distinct deciles and each bin's share is measured, not assumed to be 10 %.
    edges = np.unique(np.quantile(values, DECILES))
    shares = np.bincount(bin_index(edges, values), minlength=len(edges) + 1) / len(values)
    return {
        "kind": "continuous",
        "decile_edges": [float(v) for v in edges],
        "bin_shares": [round(float(v), 6) for v in shares],
        "sample": [round(float(v), 6) for v in np.sort(sample)],
        "count": int(len(values)),
    }


def bin_index(edges: Any, values: Any) -> np.ndarray:
    """The PSI bin of each value: bin ``i`` holds ``edges[i-1] <= v < edges[i]``."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")


def categorical_reference(values: Any, categories: list[str]) -> dict[str, Any]:
    """The share of each of ``categories`` among ``values`` (labels outside them are ignored)."""
    values = [str(v) for v in np.asarray(values).ravel()]
    counted = [v for v in values if v in categories]
    if len(counted) < MIN_REFERENCE_VALUES:
        raise ConfigError(
            f"a monitoring reference needs >= {MIN_REFERENCE_VALUES} labels, got {len(counted)}"
        )
    shares = {c: round(counted.count(c) / len(counted), 6) for c in categories}
    return {"kind": "categorical", "categories": shares, "count": len(counted)}


def monitoring_reference(
    bundle: Bundle, evaluation: Mapping[str, Any], *, source: str = "held-out evaluation, int8"
) -> dict[str, Any]:
    """The reference statistics of ``bundle`` from its held-out ``evaluation`` arrays."""
    from device_sim.tasks import spec_for

    drift = spec_for(bundle.task).drift
    if drift is None:
        raise ConfigError(f"the {bundle.task} task declares no drift statistics")
    categories = drift.categories(bundle)
    raw = drift.reference(bundle, dict(evaluation))
    statistics: dict[str, Any] = {}
    for name, values in raw.items():
        try:
            if name in categories:
                statistics[name] = categorical_reference(values, categories[name])
            else:
                statistics[name] = continuous_reference(values)
        except ConfigError as exc:
            log.warning("monitoring reference: %s skipped (%s)", name, exc)
    if not statistics:
        raise ConfigError(f"{bundle.directory}: no drift statistic has enough held-out values")
    # the share of windows the data left uninferable (missing inputs), when the task measured it
    invalid_rate = float(np.asarray(evaluation.get("invalid_rate", 0.0)))
    return {
        "schema": 2,
        "source": source,
        "invalid_rate": round(invalid_rate, 6),
        "windows": max(s["count"] for s in statistics.values()),
        "statistics": statistics,
    }


def load_evaluation(directory: Path) -> dict[str, np.ndarray]:
    """``evaluation.npz`` beside a bundle, as arrays (a ConfigError when there is none)."""
    path = Path(directory) / EVALUATION_FILE
    if not path.is_file():
        raise ConfigError(
            f"{directory} records no monitoring reference and has no {EVALUATION_FILE} to compute "
            "one from: rebuild it with `tinyfleet build`"
        )
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def record_reference(bundle: Bundle, evaluation: Mapping[str, Any] | None = None) -> Bundle:
    """``bundle`` with its reference statistics computed and saved in ``extra["monitoring"]``."""
    if evaluation is None:
        evaluation = load_evaluation(bundle.directory)
    reference = monitoring_reference(bundle, evaluation)
    return update_bundle(bundle, extra={MONITORING_KEY: reference})


def normalise_reference(reference: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded reference in the current format (schema 1 held one continuous ``field``)."""
    if "statistics" in reference:
        return dict(reference)
    statistic = {
        "kind": "continuous",
        "decile_edges": list(reference["decile_edges"]),
        "bin_shares": [0.1] * (len(reference["decile_edges"]) + 1),
        "sample": list(reference["sample"]),
        "count": int(reference.get("windows", len(reference["sample"]))),
    }
    return {
        "schema": 2,
        "source": "schema 1",
        "invalid_rate": float(reference.get("invalid_rate", 0.0)),
        "windows": int(reference.get("windows", 0)),
        "statistics": {reference["field"]: statistic},
    }
