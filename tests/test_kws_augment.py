"""KWS augmentation does what its docstring promises, reproducibly."""

from __future__ import annotations

import numpy as np

from training.kws.audio_augment import (
    AugmentPlan,
    _active_rms,
    augment_clip,
    generated_noise,
    place_word,
    silence_clip,
    spec_augment,
)

ONLY_NOISE = AugmentPlan(
    shift_ms=0,
    speed_probability=0,
    gain_db=(0.0, 0.0),
    filter_probability=0,
    reverb_probability=0,
    noise_probability=1.0,
    snr_db=(10.0, 10.0),
    noise_floor_dbfs=(-120.0, -120.0),
)


def _word() -> np.ndarray:
    t = np.arange(6000) / 16000
    return (0.5 * np.sin(2 * np.pi * 300 * t) * np.hanning(6000)).astype(np.float32)


def test_background_noise_is_mixed_at_the_requested_snr():
    rng = np.random.default_rng(0)
    clip = place_word(_word(), rng)
    noisy = augment_clip(clip, rng, ONLY_NOISE, noises=[generated_noise(rng, 48000)])
    noise = noisy - clip
    snr = 20 * np.log10(_active_rms(clip) / np.std(noise))
    assert abs(snr - 10.0) < 0.5


def test_same_seed_same_augmentation_and_outputs_stay_in_range():
    plan = AugmentPlan()
    clip = place_word(_word(), np.random.default_rng(1))
    a = augment_clip(clip, np.random.default_rng(7), plan)
    b = augment_clip(clip, np.random.default_rng(7), plan)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16000,) and a.dtype == np.float32 and np.max(np.abs(a)) <= 1.0


def test_placed_words_have_human_levels_and_silence_is_never_digital_zero():
    rng = np.random.default_rng(2)
    peaks_db = [20 * np.log10(np.max(np.abs(place_word(_word(), rng)))) for _ in range(50)]
    assert min(peaks_db) >= -30.5 and max(peaks_db) <= -2.9
    levels = [np.std(silence_clip(rng, None)) for _ in range(50)]
    assert min(levels) > 10 ** (-75 / 20) and max(levels) < 10 ** (-10 / 20)


def test_spec_augment_masks_whole_frames_with_each_coefficients_mean():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(49, 10, 1)).astype(np.float32) + np.arange(10)[:, None] * 10
    plan = AugmentPlan(mask_probability=1.0, time_masks=1, time_mask_frames=6, freq_masks=0)
    masked = spec_augment(features, rng, plan)
    changed = np.flatnonzero(np.any(masked != features, axis=(1, 2)))
    assert 0 < len(changed) <= 6 and np.all(np.diff(changed) == 1)
    np.testing.assert_allclose(masked[changed[0]], features.mean(axis=0), rtol=1e-5)
