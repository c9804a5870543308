"""Waveform and feature augmentation for keyword spotting (numpy/scipy, seeded).

Real recordings differ from our training clips in where the word sits in the window, loudness,
microphone colouring, room echo and background noise; synthetic speech is additionally dry and
clean. Each augmentation below imitates one of those, with ranges that keep the word intelligible:

* time shift ±``shift_ms`` (words are not centred in a 1 s window on a device);
* speed/pitch perturbation by resampling (0.9–1.1: speaker and speaking-rate variety);
* gain (-``gain_db``..+6 dB) and a random 2nd-order high-/low-pass (microphones, codecs);
* reverberation: a synthetic exponentially decaying impulse response (RT60 0.1–0.6 s);
* background noise at a random SNR — real ``_background_noise_`` recordings when given, else
  generated white/pink/brown noise and mains hum;
* SpecAugment-style time and frequency masks on the features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AugmentPlan:
    """Probabilities (0–1) and ranges of each augmentation; units in the field names."""

    shift_ms: float = 100.0
    speed_probability: float = 0.3
    speed_range: tuple[float, float] = (0.9, 1.1)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    filter_probability: float = 0.3
    reverb_probability: float = 0.15
    noise_probability: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_floor_dbfs: tuple[float, float] = (-70.0, -45.0)  # always: no real mic is silent
    time_masks: int = 2
    time_mask_frames: int = 6
    freq_masks: int = 1
    freq_mask_bins: int = 2
    mask_probability: float = 0.5


def generated_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise of a random kind, ``n`` samples: white, pink, brown, noise with a random
    spectral slope and band (fans, taps, traffic), the same modulated by a slow random envelope
    (clatter, voices far away), or mains hum with harmonics."""
    kind = rng.integers(6)
    white = rng.standard_normal(n)
    if kind == 0:
        noise = white
    elif kind in (1, 2, 3, 4):
        spectrum = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 1.0)
        slope = {1: 0.5, 2: 1.0}.get(int(kind), rng.uniform(0.0, 1.5))
        spectrum /= freqs**slope  # pink: 1/f power; brown: 1/f²
        if kind >= 3:
            low, high = rng.uniform(20, 500), rng.uniform(1500, 8000)
            spectrum[(freqs < low) | (freqs > high)] *= 0.05
        noise = np.fft.irfft(spectrum, n)
        if kind == 4:
            envelope = np.interp(
                np.arange(n), np.linspace(0, n, 12), np.abs(rng.standard_normal(12)) + 0.1
            )
            noise = noise * envelope
    else:
        t = np.arange(n) / SAMPLE_RATE
        mains = rng.choice([50.0, 60.0])
        noise = sum(
            np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6)
        )
        noise = noise + 0.3 * white
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def noise_segment(
    rng: np.random.Generator, noises: list[np.ndarray] | None, n: int = SAMPLE_RATE
) -> np.ndarray:
    """A random ``n``-sample cut of a real background recording (if any), else generated noise.

    Normalised to unit RMS so callers choose the level.
    """
    if noises:
        source = noises[rng.integers(len(noises))]
        start = rng.integers(0, len(source) - n + 1)
        segment = source[start : start + n].astype(np.float32)
        return segment / (np.std(segment) + 1e-9)
    return generated_noise(rng, n)


def silence_clip(rng: np.random.Generator, noises: list[np.ndarray] | None) -> np.ndarray:
    """A 1 s "_silence_" example: background noise from very quiet (-70 dBFS) to loud (-15 dBFS)."""
    level_db = rng.uniform(-70.0, -15.0)
    return (noise_segment(rng, noises) * 10 ** (level_db / 20)).astype(np.float32)


def place_word(word: np.ndarray, rng: np.random.Generator, length: int = SAMPLE_RATE) -> np.ndarray:
    """Put a trimmed word at a random position of a ``length``-sample window of zeros, at a peak
    level of -30..-3 dBFS (synthesizers all speak at about full scale; people do not)."""
    word = (
        word[:length] / (np.max(np.abs(word[:length])) + 1e-9) * 10 ** (rng.uniform(-30, -3) / 20)
    )
    start = rng.integers(0, length - len(word) + 1)
    clip = np.zeros(length, dtype=np.float32)
    clip[start : start + len(word)] = word
    return clip


def _shift(clip: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(clip)
    if samples >= 0:
        out[samples:] = clip[: len(clip) - samples]
    else:
        out[:samples] = clip[-samples:]
    return out


def _speed(clip: np.ndarray, factor: float) -> np.ndarray:
    """Play back ``factor`` times faster (pitch moves with it), then centre-fit to the length."""
    up = 100
    down = round(100 * factor)
    changed = scipy.signal.resample_poly(clip, up, down).astype(np.float32)
    n = len(clip)
    if len(changed) >= n:
        start = (len(changed) - n) // 2
        return changed[start : start + n]
    pad = n - len(changed)
    return np.pad(changed, (pad // 2, pad - pad // 2))


def _filter(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        cutoff, kind = rng.uniform(2500.0, 7000.0), "lowpass"
    else:
        cutoff, kind = rng.uniform(60.0, 400.0), "highpass"
    sos = scipy.signal.butter(2, cutoff, btype=kind, fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sos, clip).astype(np.float32)


def _reverb(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.1, 0.6)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    response = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    response[0] = 1.0 / rng.uniform(0.3, 1.0)  # the direct path dominates to varying degree
    wet = scipy.signal.fftconvolve(clip, response)[: len(clip)]
    return (wet * (np.std(clip) / (np.std(wet) + 1e-9))).astype(np.float32)


def augment_clip(
    clip: np.ndarray,
    rng: np.random.Generator,
    plan: AugmentPlan,
    noises: list[np.ndarray] | None = None,
) -> np.ndarray:
    """One random augmentation of a 1 s float32 clip; returns a new clip clipped to [-1, 1]."""
    out = clip.astype(np.float32, copy=True)
    if rng.random() < plan.speed_probability:
        out = _speed(out, rng.uniform(*plan.speed_range))
    max_shift = int(plan.shift_ms * SAMPLE_RATE / 1000)
    if max_shift:
        out = _shift(out, int(rng.integers(-max_shift, max_shift + 1)))
    if rng.random() < plan.filter_probability:
        out = _filter(out, rng)
    if rng.random() < plan.reverb_probability:
        out = _reverb(out, rng)
    out = out * np.float32(10 ** (rng.uniform(*plan.gain_db) / 20))
    if rng.random() < plan.noise_probability:
        speech_rms = _active_rms(out)
        snr = rng.uniform(*plan.snr_db)
        out = out + noise_segment(rng, noises, len(out)) * np.float32(speech_rms / 10 ** (snr / 20))
    floor = 10 ** (rng.uniform(*plan.noise_floor_dbfs) / 20)
    out = out + generated_noise(rng, len(out)) * np.float32(floor)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _active_rms(clip: np.ndarray) -> float:
    """RMS of the loudest quarter of 10 ms frames: the speech level, not diluted by pauses."""
    frames = clip[: len(clip) // 160 * 160].reshape(-1, 160)
    energy = np.sort(np.mean(np.square(frames), axis=1))
    top = energy[-max(1, len(energy) // 4) :]
    return float(np.sqrt(np.mean(top)) + 1e-9)


def spec_augment(features: np.ndarray, rng: np.random.Generator, plan: AugmentPlan) -> np.ndarray:
    """Mask random time frames and coefficient bands of ``(frames, coeffs, 1)`` features.

    Masked cells get each coefficient's mean over the window: neutral for log-mel and MFCC inputs
    alike (an MFCC's c0 is on a very different scale from the other coefficients).
    """
    if rng.random() >= plan.mask_probability:
        return features
    out = features.copy()
    fill = out.mean(axis=0)  # (coeffs, 1)
    frames, coeffs = out.shape[:2]
    for _ in range(plan.time_masks):
        width = int(rng.integers(0, plan.time_mask_frames + 1))
        start = int(rng.integers(0, max(1, frames - width)))
        out[start : start + width] = fill
    for _ in range(plan.freq_masks):
        width = int(rng.integers(0, plan.freq_mask_bins + 1))
        start = int(rng.integers(0, max(1, coeffs - width)))
        out[:, start : start + width] = fill[start : start + width]
    return out
