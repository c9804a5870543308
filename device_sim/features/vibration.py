"""Vibration front end: per-axis log band energies and time-domain statistics of one window.

Why these features: a machine's operating speed and load change its overall vibration level by an
order of magnitude and slide its shaft harmonics along the frequency axis — that is normal. What a
developing fault changes is the *shape* of the spectrum and the *impulsiveness* of the signal:

* band energies are taken **relative to the window's total power** (``log10(band / total)``), so a
  louder machine at higher speed does not look anomalous by level alone; the absolute level is kept
  once per axis (``log10 RMS``) so the model can learn how shape and level go together;
* **kurtosis** and **crest factor** of the raw signal capture looseness/rubbing (clipped,
  impulsive waveforms);
* **high-frequency kurtosis** (kurtosis of the signal above ``hf_cutoff_hz``, where rolling-element
  impacts ring the bearing housing's resonance) is the classic early bearing-fault indicator: an
  impulse train at BPFO/BPFI/BSF lifts it long before it moves the RMS;
* **order amplitudes** without a tachometer: the shaft speed is estimated per window from the
  spectrum (harmonic sum over ``speed_range_hz``, refined by parabolic interpolation) and the
  amplitude (g) at 0.5x, 1x, 1.5x, 2x ... shaft speed is measured. Imbalance lifts 1x, misalignment
  2x, looseness the half orders; a speed change moves all of them together (about with speed²),
  which the model learns from the log shaft speed that closes the feature vector.

Features are standardised with the training set's mean and scale saved in the config, so the model
input is roughly N(0, 1) and int8 quantization has a well-used range. Everything is pure numpy,
float32 out, and the FFT window, band matrix and high-pass mask are precomputed once per front end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from device_sim.errors import BundleError, DataError
from device_sim.features.base import FeatureConfig, register_feature_config

AXIS_NAMES = ("x", "y", "z")
STATS = ("rms", "kurtosis", "crest", "hf_kurtosis")
CLIP_FRACTION = 0.999  # a sample at >= 99.9 % of full scale is taken as clipped by the sensor
_EPS = 1e-12


@register_feature_config
@dataclass(frozen=True)
class VibrationFeatureConfig(FeatureConfig):
    """Front-end settings for the vibration-anomaly model (saved in the bundle).

    ``sample_rate`` in Hz, ``window_samples`` and ``hop_samples`` in accelerometer frames,
    ``f_min``/``f_max``/``hf_cutoff_hz`` in Hz, ``full_scale_g`` the sensor range in g (samples at
    full scale mean the sensor clipped). ``band_scale`` is ``"log"`` (constant relative width,
    matching how harmonics spread) or ``"linear"``. ``mean``/``scale`` standardise the feature
    vector; empty tuples mean raw features (used while the training set is being measured).
    """

    kind = "vibration_bands"

    sample_rate: float = 6400.0
    window_samples: int = 4096
    hop_samples: int = 2048
    axes: int = 3
    n_bands: int = 8
    band_scale: str = "log"
    f_min: float = 10.0
    f_max: float = 3200.0
    stats: tuple[str, ...] = STATS
    hf_cutoff_hz: float = 1000.0
    full_scale_g: float = 16.0
    orders: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
    speed_range_hz: tuple[float, float] = (10.0, 60.0)
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        nyquist = self.sample_rate / 2
        problems = []
        if self.sample_rate <= 0 or self.window_samples < 64 or self.hop_samples < 1:
            problems.append("sample_rate > 0, window_samples >= 64 and hop_samples >= 1")
        if not 0 < self.f_min < self.f_max <= nyquist:
            problems.append(f"0 < f_min < f_max <= sample_rate/2 ({nyquist:g} Hz)")
        if self.band_scale not in ("log", "linear"):
            problems.append("band_scale 'log' or 'linear'")
        if self.n_bands < 1 or self.axes < 1:
            problems.append("n_bands >= 1 and axes >= 1")
        unknown = set(self.stats) - set(STATS)
        if unknown:
            problems.append(f"stats from {STATS} (got {sorted(unknown)})")
        if not 0 < self.hf_cutoff_hz < nyquist:
            problems.append("0 < hf_cutoff_hz < sample_rate/2")
        low, high = self.speed_range_hz
        resolution = self.sample_rate / self.window_samples
        if self.orders and not (
            0 < low < high
            and max(self.orders) * high < nyquist
            and min(self.orders) * low >= 2 * resolution
        ):
            problems.append(
                "a speed_range_hz whose orders lie between 2 FFT bins and sample_rate/2 "
                f"(lowest order x lowest speed >= {2 * resolution:.3g} Hz)"
            )
        n = self.n_features
        if (self.mean or self.scale) and (len(self.mean) != n or len(self.scale) != n):
            problems.append(f"mean and scale of length {n} (or both empty)")
        if problems:
            raise BundleError("vibration feature config needs " + "; ".join(problems))

    @property
    def features_per_axis(self) -> int:
        return self.n_bands + len(self.stats) + len(self.orders)

    @property
    def n_features(self) -> int:
        """Per-axis blocks (bands, stats, orders), then the log10 shaft speed if orders are used."""
        return self.axes * self.features_per_axis + (1 if self.orders else 0)

    def band_edges_hz(self) -> np.ndarray:
        """``n_bands + 1`` band edges in Hz; every band holds at least one FFT bin."""
        if self.band_scale == "log":
            edges = np.geomspace(self.f_min, self.f_max, self.n_bands + 1)
        else:
            edges = np.linspace(self.f_min, self.f_max, self.n_bands + 1)
        resolution = self.sample_rate / self.window_samples
        for i in range(1, len(edges)):
            edges[i] = max(edges[i], edges[i - 1] + resolution)
        if edges[-1] > self.sample_rate / 2 + 1e-9:
            raise BundleError(
                f"{self.n_bands} bands from {self.f_min:g} Hz do not fit below "
                f"{self.sample_rate / 2:g} Hz at {resolution:.3g} Hz resolution: use fewer bands, "
                "a lower f_min or a longer window"
            )
        return edges

    def feature_names(self) -> list[str]:
        """Names a technician can read, e.g. ``y 1.2-1.7 kHz`` or ``z hf_kurtosis``."""
        edges = self.band_edges_hz()
        names = []
        for axis in range(self.axes):
            label = AXIS_NAMES[axis] if axis < len(AXIS_NAMES) else f"ch{axis}"
            names += [
                f"{label} {_hz(lo)}-{_hz(hi)}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)
            ]
            names += [f"{label} {stat}" for stat in self.stats]
            names += [f"{label} {order:g}x shaft" for order in self.orders]
        if self.orders:
            names.append("shaft speed")
        return names

    def feature_ranges_hz(self) -> list[tuple[float, float]]:
        """The frequency range each feature looks at, in Hz (stats: their whole band)."""
        edges = self.band_edges_hz()
        stat_range = {
            "rms": (0.0, self.sample_rate / 2),
            "kurtosis": (0.0, self.sample_rate / 2),
            "crest": (0.0, self.sample_rate / 2),
            "hf_kurtosis": (self.hf_cutoff_hz, self.sample_rate / 2),
        }
        per_axis = [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        per_axis += [stat_range[s] for s in self.stats]
        low, high = self.speed_range_hz
        per_axis += [(order * low, order * high) for order in self.orders]
        return per_axis * self.axes + ([(low, high)] if self.orders else [])

    def feature_orders(self) -> list[float | None]:
        """The shaft order a feature measures (None for bands and stats), for explanations."""
        per_axis: list[float | None] = [None] * (self.n_bands + len(self.stats))
        per_axis += list(self.orders)
        return per_axis * self.axes + ([1.0] if self.orders else [])

    def with_normalization(self, mean: np.ndarray, scale: np.ndarray) -> VibrationFeatureConfig:
        """The same config standardising with the given per-feature mean and scale."""
        scale = np.maximum(np.asarray(scale, dtype=np.float64), 1e-3)
        return dataclasses.replace(
            self,
            mean=tuple(float(v) for v in mean),
            scale=tuple(float(v) for v in scale),
        )

    def build(self) -> VibrationFrontEnd:
        return VibrationFrontEnd(self)

    def work_elements(self) -> int:
        """Band masks, the shaft-speed harmonic-sum table (candidates x FFT bins) and one
        window's spectra (see :class:`VibrationFrontEnd`)."""
        bins = self.window_samples // 2 + 1
        candidates = 0
        if self.orders:
            low, high = self.speed_range_hz
            candidates = math.ceil((high - low) / (self.sample_rate / self.window_samples / 4))
        constants = bins * (self.n_bands + 3) + candidates * (bins + 8)
        return constants + 4 * self.window_samples * self.axes


def _hz(value: float) -> str:
    return f"{value / 1000:.2g}k" if value >= 1000 else f"{value:.3g}"


def validate_window(window: np.ndarray, full_scale_g: float = 16.0) -> str | None:
    """Why a raw window must not be inferred (``None`` when it is fine).

    Non-finite samples (a broken driver or transport), samples at the sensor's full scale (the
    accelerometer clipped, so energies and kurtosis are wrong) and a flat axis (sensor stuck or
    disconnected) all produce confident nonsense from the model.
    """
    window = np.asarray(window)
    if window.size == 0:
        return "empty window"
    if not np.all(np.isfinite(window)):
        bad = int(np.count_nonzero(~np.isfinite(window)))
        return f"{bad} non-finite sample(s) (NaN/Inf)"
    clipped = int(np.count_nonzero(np.abs(window) >= CLIP_FRACTION * full_scale_g))
    if clipped:
        return f"{clipped} clipped sample(s) at the sensor's ±{full_scale_g:g} g full scale"
    flat = window.reshape(len(window), -1).std(axis=0) == 0
    if np.any(flat):
        return f"flat signal on axis {int(np.argmax(flat))} (sensor stuck or disconnected)"
    return None


class VibrationFrontEnd:
    """Raw window ``(window_samples, axes)`` in g → float32 feature vector ``(n_features,)``."""

    def __init__(self, config: VibrationFeatureConfig) -> None:
        self.config = config
        self.window_samples = config.window_samples
        self.hop_samples = config.hop_samples
        self.feature_shape = (config.n_features,)
        n = config.window_samples
        self._taper = np.hanning(n).astype(np.float64)
        freqs = np.fft.rfftfreq(n, d=1.0 / config.sample_rate)
        edges = config.band_edges_hz()
        bands = np.zeros((config.n_bands, len(freqs)))
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            last = i == config.n_bands - 1
            bands[i] = (freqs >= lo) & ((freqs <= hi) if last else (freqs < hi))
        self._bands = bands
        self._hf_mask = (freqs >= config.hf_cutoff_hz).astype(np.float64)
        self._resolution = config.sample_rate / n
        if config.orders:
            low, high = config.speed_range_hz
            # candidate speeds every quarter bin; harmonic sum of 1x..4x by linear interpolation
            self._candidates = np.arange(low, high, self._resolution / 4)
            positions = np.outer(self._candidates, np.arange(1, 5)) / self._resolution
            harmonic_sum = np.zeros((len(self._candidates), len(freqs)))
            rows = np.arange(len(self._candidates))
            for column in positions.T:
                below = np.floor(column).astype(int)
                fraction = column - below
                np.add.at(harmonic_sum, (rows, below), 1 - fraction)
                np.add.at(harmonic_sum, (rows, np.minimum(below + 1, len(freqs) - 1)), fraction)
            self._harmonic_sum = harmonic_sum
        self._mean = np.asarray(config.mean, dtype=np.float64) if config.mean else None
        self._scale = np.asarray(config.scale, dtype=np.float64) if config.scale else None

    def __call__(self, window: np.ndarray) -> np.ndarray:
        window = np.asarray(window, dtype=np.float64)
        if window.ndim == 1 and self.config.axes == 1:
            window = window[:, np.newaxis]
        return self.batch(window[np.newaxis])[0]

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """Many windows ``(b, window_samples, axes)`` at once (training); same maths as ``__call__``."""
        windows = np.asarray(windows, dtype=np.float64)
        expected = (self.window_samples, self.config.axes)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise DataError(
                f"a vibration window must have shape {expected} (samples, axes), got "
                f"{windows.shape[1:] if windows.ndim == 3 else windows.shape}: check the source's "
                "axes and the bundle's window_samples"
            )
        x = np.transpose(windows, (0, 2, 1))  # (b, axes, n)
        x = x - x.mean(axis=-1, keepdims=True)
        spectrum = np.fft.rfft(x * self._taper, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        band_power = power @ self._bands.T
        total = band_power.sum(axis=-1, keepdims=True)
        parts = [np.log10(band_power / (total + _EPS) + 1e-6)]
        rms: list[np.ndarray] = []  # computed once, by the first statistic that needs it
        for stat in self.config.stats:
            parts.append(self._stat(stat, x, spectrum, rms)[..., np.newaxis])
        if self.config.orders:
            speed = self.shaft_speed_hz(power)
            parts.append(self._order_amplitudes(power, speed))
        features = np.concatenate(parts, axis=-1).reshape(len(windows), -1)
        if self.config.orders:
            features = np.concatenate([features, np.log10(speed)[:, np.newaxis]], axis=-1)
        if self._mean is not None:
            features = (features - self._mean) / self._scale
        return features.astype(np.float32)

    def shaft_speed_hz(self, power: np.ndarray) -> np.ndarray:
        """Shaft speed (Hz) per window from power spectra ``(b, axes, bins)``.

        The candidate whose first four harmonics hold the most amplitude wins; the 1x peak is then
        refined by parabolic interpolation of the log spectrum (sub-bin accuracy).
        """
        magnitude = np.sqrt(power.sum(axis=1))  # (b, bins)
        best = self._candidates[np.argmax(magnitude @ self._harmonic_sum.T, axis=-1)]
        centre = np.round(best / self._resolution).astype(int)
        rows = np.arange(len(magnitude))
        near = np.stack([magnitude[rows, centre + d] for d in (-1, 0, 1)], axis=-1)
        peak = centre + np.argmax(near, axis=-1) - 1
        left, mid, right = (np.log(magnitude[rows, peak + d] + 1e-12) for d in (-1, 0, 1))
        curvature = left - 2 * mid + right
        safe = np.where(curvature < 0, curvature, -1.0)
        offset = np.where(curvature < 0, 0.5 * (left - right) / safe, 0.0)
        return (peak + np.clip(offset, -0.5, 0.5)) * self._resolution

    def _order_amplitudes(self, power: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """log10 amplitude (g) at each order x speed: power within +-2 bins (the Hann main lobe)."""
        bins = power.shape[-1]
        offsets = np.arange(-2, 3)
        amplitudes = []
        for order in self.config.orders:
            centre = np.round(order * speed / self._resolution).astype(int)
            index = np.clip(centre[:, None] + offsets, 0, bins - 1)  # (b, 5)
            index = np.repeat(index[:, None, :], power.shape[1], axis=1)  # (b, axes, 5)
            lobe = np.take_along_axis(power, index, axis=-1).sum(axis=-1)
            # Hann: a sine of amplitude A puts A² n² / 16 x 1.5 (ENBW) into its main lobe
            amplitude = 4 * np.sqrt(lobe / 1.5) / self.window_samples
            amplitudes.append(np.log10(amplitude + 1e-6))
        return np.stack(amplitudes, axis=-1)  # (b, axes, orders)

    def _stat(
        self, stat: str, x: np.ndarray, spectrum: np.ndarray, rms_cache: list[np.ndarray]
    ) -> np.ndarray:
        """One time-domain statistic per (window, axis); log-compressed where it spans decades.
        ``rms_cache`` holds the RMS once a statistic needed it (~5 % of a window's front end)."""
        if stat in ("rms", "crest") and not rms_cache:
            rms_cache.append(np.sqrt(np.mean(x**2, axis=-1)))
        if stat == "rms":
            return np.log10(rms_cache[0] + 1e-6)
        if stat == "kurtosis":
            return np.log10(_kurtosis(x) + 1e-6)
        if stat == "crest":
            return np.max(np.abs(x), axis=-1) / (rms_cache[0] + 1e-9)
        # Untapered: a taper would modulate the noise and lift kurtosis by itself. The brick-wall
        # mask rings at the (circular) window edges, so those are left out.
        raw = np.fft.rfft(x, axis=-1)
        high = np.fft.irfft(raw * self._hf_mask, n=self.window_samples, axis=-1)
        trim = self.window_samples // 16
        return np.log10(_kurtosis(high[..., trim:-trim]) + 1e-6)


def _kurtosis(x: np.ndarray) -> np.ndarray:
    """Pearson kurtosis (3 for Gaussian noise, 1.5 for a sine, large for impulse trains)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    squared = centred * centred  # (x²)² instead of x**4: numpy's generic pow is ~10x slower
    var = squared.mean(axis=-1)
    return (squared * squared).mean(axis=-1) / (var**2 + _EPS)
