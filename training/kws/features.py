"""Clips → front-end features: augmented training epochs, silence, held-out synthetic voices,
and the standardisation constants measured on them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from device_sim import console
from device_sim.errors import DataError
from device_sim.features.audio import AudioFeatureConfig, AudioFrontEnd, with_normalization
from training.kws import audio_augment
from training.kws.audio_augment import AugmentPlan
from training.kws.speech_commands import LABELS
from training.kws.synth_speech import SynthCorpus, SynthPlan


def augmented_features(
    clips: list[np.ndarray] | np.ndarray,
    frontend: AudioFrontEnd,
    rng: np.random.Generator,
    plan: AugmentPlan,
    noises: list[np.ndarray] | None,
    *,
    place: bool = False,
    chunk: int = 512,
) -> np.ndarray:
    """Augment each clip (trimmed synthetic words are first placed in a 1 s window) → features."""
    out = []
    starts = range(0, len(clips), chunk)
    for start in console.track(starts, f"kws features ({len(clips)} clips)", "chunks"):
        batch = []
        for clip in clips[start : start + chunk]:
            clip = np.asarray(clip)
            if clip.dtype == np.int16:
                clip = clip.astype(np.float32) / 32768.0
            if place:
                clip = audio_augment.place_word(clip, rng)
            batch.append(audio_augment.augment_clip(clip, rng, plan, noises))
        features = frontend.batch(np.stack(batch))
        out.append(np.stack([audio_augment.spec_augment(f, rng, plan) for f in features]))
    return np.concatenate(out) if out else np.zeros((0, *frontend.feature_shape), np.float32)


def silence_features(
    count: int, frontend: AudioFrontEnd, rng: np.random.Generator, noises: list[np.ndarray] | None
) -> np.ndarray:
    clips = np.stack([audio_augment.silence_clip(rng, noises) for _ in range(count)])
    return frontend.batch(clips)


def synth_eval_features(
    corpus: SynthCorpus, frontend: AudioFrontEnd, rng: np.random.Generator
) -> np.ndarray:
    """Held-out synthetic voices as a device would hear them: placed anywhere, mildly noisy."""
    plan = AugmentPlan(
        shift_ms=0,
        speed_probability=0,
        filter_probability=0,
        reverb_probability=0,
        noise_probability=1.0,
        snr_db=(10.0, 30.0),
        mask_probability=0,
    )
    return augmented_features(corpus.audio, frontend, rng, plan, None, place=True)


def label_indices(labels: np.ndarray | list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def synth_plan(knob: Callable[[str], Any], seed: int) -> SynthPlan:
    return SynthPlan(
        keyword_renditions=int(knob("keyword_renditions")),
        unknown_renditions=int(knob("unknown_renditions")),
        seed=seed,
    )


NORMALIZATIONS = ("shared", "per-coefficient", "none")


def standardized(config: AudioFeatureConfig, features: np.ndarray, mode: str) -> AudioFeatureConfig:
    """The front end's standardisation constants, measured on training ``features``.

    ``shared`` (default since #13): each coefficient's mean is removed, all are divided by one
    common scale (the RMS of the per-coefficient stds), so MFCC c0 keeps its ~20x larger spread.
    ``per-coefficient`` gives every coefficient unit variance: the first convolution slides along
    the coefficient axis with shared weights, so this boosts c5..c9 relative to c0 — it cost 3.9
    points on unseen speakers over 5 folds, 5.7 over 3 folds (benchmarks/kws_reference.py).
    ``none``: raw MFCCs.
    """
    if mode not in NORMALIZATIONS:
        raise DataError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")
    if mode == "none":
        return config
    config = with_normalization(config, features)
    if mode == "shared":
        shared = round(float(np.sqrt(np.mean(np.square(config.norm_std)))), 5)
        config = dataclasses.replace(config, norm_std=(shared,) * len(config.norm_std))
    return config
