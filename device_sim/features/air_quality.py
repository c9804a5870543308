"""Air-quality front end: a window of past sensor rows → one flat, normalised feature vector.

The device keeps the last ``window_rows`` rows (hourly by default) of its gas-sensor readings; each
row holds the bundle's ``inputs`` in order (five metal-oxide sensor responses, temperature,
humidity …, plus the device clock's ``hour`` and ``weekday`` when the model uses them). Per input
the front end applies one transform:

``log``      ``(ln(max(x, log_floor)) - mean) / std`` — MOX responses follow a power law in the gas
             concentration, so their logarithm is close to linear in log-concentration;
``linear``   ``(x - mean) / std`` — temperature (°C), relative humidity (%), absolute humidity (g/m³);
``hour``     ``sin(2π h/24), cos(2π h/24)`` of the hour of day ``h`` (0–23, local time): two features;
``weekend``  ``1.0`` on Saturday/Sunday, ``0.0`` otherwise, for a weekday ``0 = Monday … 6 = Sunday``.

``clip_low``/``clip_high`` (optional, one pair per input, in normalised units) bound a ``log`` or
``linear`` feature: the training part's range of temperature and humidity, so a winter morning
colder than any training hour is treated as the coldest one seen instead of being extrapolated by a
network that never saw it. Bounds of ±1e9 leave an input (the gas sensors) unbounded.

Normalisation statistics come from the training part of the data only and are stored here, so the
device (and the C99 port in ``firmware_bridge``) rebuild exactly the same features from the bundle.
The output is row-major: oldest row first, each row's features in input order. A window with a
missing (NaN) input produces NaN features; the task runtime refuses to infer on such windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from device_sim.errors import BundleError, DataError
from device_sim.features.base import FeatureConfig, register_feature_config

TRANSFORMS = ("log", "linear", "hour", "weekend")
# Transforms whose features are z-normalised with stored statistics (the others are bounded).
NORMALISED = ("log", "linear")
FEATURES_PER_TRANSFORM = {"log": 1, "linear": 1, "hour": 2, "weekend": 1}
UNBOUNDED = 1e9  # a clip bound that never binds (JSON has no infinity)


@register_feature_config
@dataclass(frozen=True)
class AirQualityWindowConfig(FeatureConfig):
    """Window length, input order, per-input transform and the training-part statistics.

    ``mean``/``std`` hold one value per input (after the log for ``log`` inputs; ``0``/``1`` for
    ``hour`` and ``weekend``, which are not normalised). ``row_seconds`` is the period of one row
    (3600 s: hourly averages, as in the UCI Air Quality data).
    """

    kind: ClassVar[str] = "air_quality_window"

    inputs: tuple[str, ...] = ()
    transforms: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    window_rows: int = 6
    row_seconds: float = 3600.0
    log_floor: float = 1.0
    clip_low: tuple[float, ...] = ()
    clip_high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if n == 0:
            raise BundleError("air_quality_window needs at least one input column")
        for name, values in (
            ("transforms", self.transforms),
            ("mean", self.mean),
            ("std", self.std),
        ):
            if len(values) != n:
                raise BundleError(
                    f"air_quality_window: {name} has {len(values)} entries for {n} inputs; "
                    "rebuild the bundle"
                )
        if len(self.clip_low) != len(self.clip_high) or len(self.clip_low) not in (0, n):
            raise BundleError(
                f"air_quality_window: clip_low/clip_high need {n} entries each (or none); "
                "rebuild the bundle"
            )
        if any(not low <= high for low, high in zip(self.clip_low, self.clip_high, strict=True)):
            raise BundleError("air_quality_window: every clip_low must be <= its clip_high")
        unknown = sorted(set(self.transforms) - set(TRANSFORMS))
        if unknown:
            raise BundleError(
                f"air_quality_window: unknown transform(s) {unknown}; use {TRANSFORMS}"
            )
        if any(not (s > 0 and math.isfinite(s)) for s in self.std):
            raise BundleError("air_quality_window: every std must be a positive finite number")
        if self.window_rows < 1 or self.row_seconds <= 0 or self.log_floor <= 0:
            raise BundleError("air_quality_window: window_rows, row_seconds, log_floor must be > 0")

    @classmethod
    def fitted(
        cls,
        inputs: tuple[str, ...],
        transforms: tuple[str, ...],
        training_rows: np.ndarray,
        *,
        window_rows: int = 6,
        row_seconds: float = 3600.0,
        log_floor: float = 1.0,
        clip_linear: bool = False,
        clip_quantile: float = 0.0,
    ) -> AirQualityWindowConfig:
        """A config whose statistics are measured on ``training_rows`` (n_rows, n_inputs), NaN-aware.

        Pass the training part only: statistics from evaluation rows would leak into the score.
        ``clip_linear`` bounds every ``linear`` input (temperature, humidity) to its training range
        (``clip_quantile`` q > 0: to its q and 1 - q training quantiles instead of min and max).
        """
        rows = np.asarray(training_rows, dtype=np.float64)
        mean, std, low, high = [], [], [], []
        for i, transform in enumerate(transforms):
            column = rows[:, i]
            column = column[np.isfinite(column)]
            low.append(-UNBOUNDED)
            high.append(UNBOUNDED)
            if transform not in NORMALISED:
                mean.append(0.0)
                std.append(1.0)
                continue
            if column.size < 2:
                raise BundleError(
                    f"input {inputs[i]!r} has fewer than 2 values in the training part"
                )
            if transform == "log":
                column = np.log(np.maximum(column, log_floor))
            spread = float(np.std(column))
            mean.append(float(np.mean(column)))
            std.append(spread if spread > 1e-9 else 1.0)
            if clip_linear and transform == "linear":
                lo, hi = np.quantile(column, [clip_quantile, 1.0 - clip_quantile])
                low[-1] = (float(lo) - mean[-1]) / std[-1]
                high[-1] = (float(hi) - mean[-1]) / std[-1]
        return cls(
            inputs=tuple(inputs),
            transforms=tuple(transforms),
            mean=tuple(mean),
            std=tuple(std),
            window_rows=int(window_rows),
            row_seconds=float(row_seconds),
            log_floor=float(log_floor),
            clip_low=tuple(low) if clip_linear else (),
            clip_high=tuple(high) if clip_linear else (),
        )

    @property
    def features_per_row(self) -> int:
        return sum(FEATURES_PER_TRANSFORM[t] for t in self.transforms)

    def build(self) -> AirQualityWindow:
        return AirQualityWindow(self)

    def work_elements(self) -> int:
        """One window's raw rows and features (the constants are a few per input)."""
        return self.window_rows * (len(self.inputs) + self.features_per_row) + 8 * len(self.inputs)


class AirQualityWindow:
    """The callable front end. Constants are attributes so the C port can emit them as tables."""

    def __init__(self, config: AirQualityWindowConfig) -> None:
        self.config = config
        self.inputs = config.inputs
        self.transforms = config.transforms
        self.mean = np.asarray(config.mean, dtype=np.float64)
        self.std = np.asarray(config.std, dtype=np.float64)
        self.log_floor = config.log_floor
        self.window_rows = config.window_rows
        self.window_samples = config.window_rows
        self.features_per_row = config.features_per_row
        self.feature_shape = (config.window_rows * config.features_per_row,)
        # Index lists per transform, so the C port (and this code) can loop over plain int tables.
        self.log_channels = tuple(i for i, t in enumerate(self.transforms) if t == "log")
        self.linear_channels = tuple(i for i, t in enumerate(self.transforms) if t == "linear")
        # Where each transform's inputs come from and its features go, so a window is a handful
        # of whole-array operations instead of one small array per input (the per-window cost).
        columns: dict[str, tuple[list[int], list[int]]] = {
            t: ([], []) for t in ("log", "linear", "hour_sin", "hour_cos", "weekend")
        }
        out = 0
        for i, transform in enumerate(self.transforms):
            if transform == "hour":
                for name in ("hour_sin", "hour_cos"):
                    columns[name][0].append(i)
                    columns[name][1].append(out)
                    out += 1
            else:
                columns[transform][0].append(i)
                columns[transform][1].append(out)
                out += 1
        self._columns = {
            name: (np.array(src, dtype=np.intp), np.array(dst, dtype=np.intp))
            for name, (src, dst) in columns.items()
            if src
        }
        self._log_mean, self._log_std = self._scale_for("log")
        self._linear_mean, self._linear_std = self._scale_for("linear")
        bounded = bool(config.clip_low)
        low = np.asarray(config.clip_low if bounded else [-UNBOUNDED] * len(self.inputs))
        high = np.asarray(config.clip_high if bounded else [UNBOUNDED] * len(self.inputs))
        self.clip_low, self.clip_high = low, high
        self._bounds = {
            name: (low[self._columns[name][0]], high[self._columns[name][0]])
            for name in ("log", "linear")
            if bounded and name in self._columns
        }

    def _scale_for(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        src = self._columns[name][0] if name in self._columns else np.empty(0, dtype=np.intp)
        return self.mean[src], self.std[src]

    def transform_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``(..., n_inputs)`` → per-row features ``(..., features_per_row)`` (float64)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[-1] != len(self.inputs):
            raise ValueError(
                f"rows have {rows.shape[-1]} columns, the front end expects {len(self.inputs)} "
                f"({', '.join(self.inputs)})"
            )
        features = np.empty(rows.shape[:-1] + (self.features_per_row,), dtype=np.float64)
        columns = self._columns
        if "log" in columns:
            src, dst = columns["log"]
            with np.errstate(invalid="ignore"):
                features[..., dst] = (
                    np.log(np.maximum(rows[..., src], self.log_floor)) - self._log_mean
                ) / self._log_std
            if "log" in self._bounds:
                features[..., dst] = np.clip(features[..., dst], *self._bounds["log"])
        if "linear" in columns:
            src, dst = columns["linear"]
            features[..., dst] = (rows[..., src] - self._linear_mean) / self._linear_std
            if "linear" in self._bounds:
                features[..., dst] = np.clip(features[..., dst], *self._bounds["linear"])
        if "hour_sin" in columns:
            src, dst = columns["hour_sin"]
            angle = 2.0 * np.pi * rows[..., src] / 24.0
            features[..., dst] = np.sin(angle)
            features[..., columns["hour_cos"][1]] = np.cos(angle)
        if "weekend" in columns:
            src, dst = columns["weekend"]
            x = rows[..., src]
            features[..., dst] = np.where(np.isnan(x), np.nan, (x >= 5).astype(np.float64))
        return features

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """One window ``(window_rows, n_inputs)``, oldest row first → features ``(F,)`` float32."""
        window = np.asarray(window)
        if window.shape != (self.window_rows, len(self.inputs)):
            raise DataError(
                f"window has shape {window.shape}, expected ({self.window_rows}, {len(self.inputs)})"
            )
        return self.transform_rows(window).reshape(-1).astype(np.float32)

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """Many windows ``(n, window_rows, n_inputs)`` → ``(n, F)`` float32, as ``__call__`` each."""
        windows = np.asarray(windows)
        return self.transform_rows(windows).reshape(len(windows), -1).astype(np.float32)


def sliding_windows(rows: np.ndarray, window_rows: int) -> np.ndarray:
    """All windows ending at rows ``window_rows-1 … n-1``: a read-only view ``(n-w+1, w, cols)``."""
    rows = np.asarray(rows)
    if len(rows) < window_rows:
        return np.empty((0, window_rows, rows.shape[1]), dtype=rows.dtype)
    view = np.lib.stride_tricks.sliding_window_view(rows, window_rows, axis=0)
    return np.moveaxis(view, -1, 1)
