"""Jittered copies of the training windows (knob ``augment_copies``, off by default).

Speed, gain and sensor noise differ a little between runs of the same machine; a short record
shows only a few of them. Each copy is a training window stretched in time, scaled and, if asked,
noised — cut from a slightly longer window of the same training part, so no copy reads samples
of the calibration or evaluation parts.
"""

from __future__ import annotations

import numpy as np

from device_sim.sources.vibration_files import Recording
from training.stage import TrainOptions
from training.vibration.data import features_of, split_windows


def augment_windows(
    longer: list[np.ndarray],
    window: int,
    copies: int,
    rng: np.random.Generator,
    *,
    stretch: float = 0.02,
    gain_db: float = 1.0,
    noise: float = 0.0,
) -> list[np.ndarray]:
    """``copies`` jittered versions of each training window: a random time stretch (speed
    jitter, factor 1 ± ``stretch``), gain (± ``gain_db`` dB) and white noise (``noise`` × the
    window's RMS per axis). ``longer`` holds windows cut ``window × (1 + stretch) + 1`` samples
    long from the same training parts, so a stretched window never reads past its part.
    """
    out = []
    grid = np.arange(window, dtype=np.float64)
    for windows in longer:
        if not len(windows):
            continue
        windows = np.asarray(windows, dtype=np.float64)
        source = np.arange(windows.shape[1], dtype=np.float64)
        for _ in range(copies):
            factors = rng.uniform(1 - stretch, 1 + stretch, len(windows))
            gains = 10 ** (rng.uniform(-gain_db, gain_db, len(windows)) / 20)
            batch = np.empty((len(windows), window, windows.shape[2]), dtype=np.float32)
            for i, (samples, factor, gain) in enumerate(zip(windows, factors, gains, strict=True)):
                for axis in range(samples.shape[1]):
                    batch[i, :, axis] = gain * np.interp(grid * factor, source, samples[:, axis])
            if noise:
                rms = np.sqrt(np.mean(batch.astype(np.float64) ** 2, axis=1, keepdims=True))
                batch += (noise * rms * rng.standard_normal(batch.shape)).astype(np.float32)
            out.append(batch)
    return out


def augmented_features(
    options: TrainOptions,
    recordings: list[Recording],
    frontend,
    hop: int,
    fit_hop: int,
    fractions: tuple[float, ...],
) -> np.ndarray | None:
    """Raw front-end features of ``augment_copies`` jittered copies of every training window
    (knobs ``augment_stretch``, ``augment_gain_db``, ``augment_noise``), or None when off."""
    copies = int(options.knob("augment_copies", 0))
    if not copies:
        return None
    window = frontend.window_samples
    stretch = float(options.knob("augment_stretch", 0.02))
    longer = split_windows(
        recordings, int(np.ceil(window * (1 + stretch))) + 1, hop, fit_hop, fractions=fractions
    ).train
    augmented = augment_windows(
        longer,
        window,
        copies,
        np.random.default_rng(options.seed + 1),
        stretch=stretch,
        gain_db=float(options.knob("augment_gain_db", 1.0)),
        noise=float(options.knob("augment_noise", 0.0)),
    )
    return features_of(frontend, augmented)
