"""Vibration anomaly detection: a small autoencoder trained on normal windows only.

Data: the built-in simulator (:mod:`device_sim.sources.vibration_sim`) or a folder ``DIR/normal/…``
plus one sub-folder per anomalous class (``DIR/outer_race/…``), in any format of
:mod:`device_sim.sources.vibration_files`.

**Time split** (:mod:`.data`). Each *normal* recording is cut by time: the first 55 % trains the
model, the next 20 % calibrates the score (even windows: each feature's error scale; odd windows:
the threshold), the last 25 % evaluates it. Windows are cut inside each part, so no window
straddles a boundary and train/calibration/evaluation never share a sample. Anomalous recordings
are never trained on; all their windows are evaluation data.

**Threshold** (:mod:`.threshold`). The anomaly score is the mean squared reconstruction error of
the standardised features, each divided by its RMS error on the training windows
(``head["error_scale"]``, :func:`device_sim.tasks.vibration.reconstruction_error`). The threshold
is the ``1 - target_false_alarm_rate`` quantile of the scores of the held-out calibration windows,
so the false-alarm rate per window on normal data is about the target. :func:`calibrate_head`
repeats this for the int8 model, whose scores differ slightly from the float model's.

**Baselines** (:mod:`.baselines`) on the same features and rows: an RMS threshold (the largest
standardised log-RMS over the axes — what a vibration-level alarm does) and the distance to the
nearest of k K-means centroids fitted on the training windows.

One module per stage: :mod:`.recordings` (simulator / folder → recordings), :mod:`.data` (time
split, windows, features), :mod:`.dense_autoencoder` (the model), :mod:`.train` (the recipe),
:mod:`.threshold`, :mod:`.baselines`, :mod:`.evaluate` (metrics, ``tinyfleet evaluate``),
:mod:`.augment` (jittered training windows, off by default).
"""

from training.vibration.augment import augment_windows
from training.vibration.baselines import (
    BASELINES,
    band_columns,
    baseline_scores,
    kmeans_baseline,
    rms_baseline,
    stat_baseline,
)
from training.vibration.data import (
    WindowSplits,
    cut_windows,
    feature_config_for,
    features_of,
    split_by_time,
    split_windows,
    window_starts,
)
from training.vibration.dense_autoencoder import dense_autoencoder
from training.vibration.evaluate import evaluate, metrics_from_scores, score
from training.vibration.presets import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_WINDOW_SECONDS,
    FIT_HOP_DIVISOR,
    INPUT_RANGE_SIGMA,
    MAX_MODEL_RATE,
    PRESETS,
    SEARCH_SPACE,
    SPLIT_FRACTIONS,
    TASK,
)
from training.vibration.recordings import (
    folder_recordings,
    load_recordings,
    model_rate_for,
    simulator_recordings,
    window_for,
)
from training.vibration.report_chart import REPORT_TITLE, report_chart, report_importance
from training.vibration.threshold import calibrate_head, residual_scale
from training.vibration.train import train

__all__ = [
    "BASELINES",
    "DEFAULT_SAMPLE_RATE",
    "DEFAULT_WINDOW_SECONDS",
    "FIT_HOP_DIVISOR",
    "INPUT_RANGE_SIGMA",
    "MAX_MODEL_RATE",
    "PRESETS",
    "REPORT_TITLE",
    "SEARCH_SPACE",
    "SPLIT_FRACTIONS",
    "TASK",
    "WindowSplits",
    "augment_windows",
    "band_columns",
    "baseline_scores",
    "calibrate_head",
    "cut_windows",
    "dense_autoencoder",
    "evaluate",
    "feature_config_for",
    "features_of",
    "folder_recordings",
    "kmeans_baseline",
    "load_recordings",
    "metrics_from_scores",
    "model_rate_for",
    "report_chart",
    "report_importance",
    "residual_scale",
    "rms_baseline",
    "score",
    "simulator_recordings",
    "split_by_time",
    "split_windows",
    "stat_baseline",
    "train",
    "window_for",
    "window_starts",
]
