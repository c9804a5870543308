"""Time split, windows and features: what the autoencoder trains, calibrates and is scored on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device_sim.errors import BundleError, DataError
from device_sim.features.vibration import VibrationFeatureConfig
from device_sim.sources.vibration_files import Recording
from training.stage import TrainOptions
from training.vibration.presets import DEFAULT_WINDOW_SECONDS, FIT_HOP_DIVISOR, SPLIT_FRACTIONS
from training.vibration.recordings import window_for


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


def features_of(frontend, windows: list[np.ndarray], batch: int = 512) -> np.ndarray:
    """Front-end features of many windows, in batches to bound memory."""
    chunks = [w[i : i + batch] for w in windows for i in range(0, len(w), batch) if len(w)]
    if not chunks:
        return np.zeros((0,) + frontend.feature_shape, dtype=np.float32)
    return np.concatenate([frontend.batch(c) for c in chunks])


def feature_config_for(
    options: TrainOptions, rate: float, axes: int
) -> tuple[VibrationFeatureConfig, int]:
    """The front end for this data and the hop (samples) of train/calibration windows.

    Simulator: 0.64 s windows with shaft orders (speed/load changes are the hard part there).
    Recordings: ~0.1 s windows up to the Nyquist frequency (bearing resonances), 16 log bands,
    windows overlapping 31/32 for training so that 5 s per condition give ~800 windows; shaft orders
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
