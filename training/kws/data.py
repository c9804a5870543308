"""The KWS data set: which clips train and which evaluate (by speaker), and the epoch maker."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from device_sim.errors import DataError
from device_sim.features.audio import AudioFrontEnd
from training.kws import audio_augment
from training.kws.audio_augment import AugmentPlan
from training.kws.features import (
    augmented_features,
    label_indices,
    silence_features,
    synth_eval_features,
    synth_plan,
)
from training.kws.speech_commands import (
    KEYWORDS,
    LABELS,
    SILENCE,
    UNKNOWN,
    Clip,
    cap_per_label,
    load_background,
    load_clips,
    scan_folder,
)
from training.kws.synth_speech import load_or_synthesize
from training.stage import TrainOptions

log = logging.getLogger(__name__)


@dataclass
class KwsData:
    """Training material (raw clips, re-augmented per epoch) and clean held-out evaluation features.

    ``make_features(rng)`` returns one epoch: ``copies`` fresh augmentations of every training clip
    plus silence, as ``(features, rows)``; ``rows`` index ``targets`` (label indices: one per
    training clip, then one for silence). ``teacher_rows`` marks the real clips a teacher may label.
    """

    make_features: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    targets: np.ndarray
    train_audio: np.ndarray  # int16 (real clips) — what a teacher labels
    train_speakers: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    description: dict[str, Any]


def split_by_fold(
    clips: list[Clip], folds: int, fold: int, seed: int = 0
) -> tuple[list[Clip], list[Clip]]:
    """(training, testing) clips for speaker-disjoint k-fold: speakers are shuffled (``seed``) and
    dealt round-robin into ``folds`` groups; ``fold`` is tested. ``_silence_`` clips count as their
    own speakers, so they are spread over the folds too."""
    if not 0 <= fold < folds:
        raise DataError(f"fold must be in 0..{folds - 1}, got {fold}")
    speakers = sorted({clip.speaker for clip in clips})
    order = np.random.default_rng(seed).permutation(len(speakers))
    group = {speakers[i]: rank % folds for rank, i in enumerate(order)}
    test = [clip for clip in clips if group[clip.speaker] == fold]
    train = [clip for clip in clips if group[clip.speaker] != fold]
    return train, test


def _choose_split(folder: Any, knob: Callable[[str], Any]) -> tuple[list[Clip], list[Clip], str]:
    folds = int(knob("folds"))
    if folds:
        train, test = split_by_fold(folder.clips, folds, int(knob("fold")))
        return train, test, f"speaker-disjoint fold {int(knob('fold'))} of {folds}"
    test = folder.split("testing")
    if not bool(knob("holdout")):
        return folder.clips, test, "every speaker (final model: the eval clips were trained on)"
    train = folder.split("training") + folder.split("validation")
    split = "official lists" if folder.official_split else "by speaker (sha1 of the id)"
    return train, test, split


def build_dataset(
    options: TrainOptions, frontend: AudioFrontEnd, knob: Callable[[str], Any]
) -> KwsData:
    """Training material (augmented afresh each epoch) and evaluation features (clean).

    Real data: train on the training+validation speakers (every speaker with ``holdout=0``; the
    other folds with ``folds``/``fold``), evaluate on the held-out speakers.
    Synthetic only: evaluate on held-out synthetic voices.
    """
    plan = AugmentPlan(**dict(knob("augment") or {}))
    copies = int(knob("copies"))
    description: dict[str, Any] = {"augment_copies": copies}
    noises: list[np.ndarray] | None = None
    use_synth = options.data is None or options.synth
    real_audio = np.zeros((0, audio_augment.SAMPLE_RATE), np.int16)
    real_labels = np.zeros(0, np.int64)
    real_speakers = np.zeros(0, str)
    synth_audio: list[np.ndarray] = []
    synth_labels = np.zeros(0, np.int64)
    n_silence = 0

    if options.data is not None:
        folder = scan_folder(options.data)
        noises = load_background(folder.background) or None
        train_clips, test_clips, split = _choose_split(folder, knob)
        keyword_mean = np.mean(
            [n for lbl, n in Counter(c.label for c in train_clips).items() if lbl in KEYWORDS]
        )
        train_clips = cap_per_label(train_clips, UNKNOWN, int(1.5 * keyword_mean), options.seed)
        test_mean = np.mean(
            [n for lbl, n in Counter(c.label for c in test_clips).items() if lbl in KEYWORDS] or [0]
        )
        test_clips = cap_per_label(test_clips, UNKNOWN, int(1.5 * test_mean) + 1, options.seed)
        if not test_clips:
            raise DataError(
                f"{options.data} has too few speakers to hold any out for testing: add recordings "
                "of more speakers (each file named <speaker>_nohash_<n>.wav)"
            )
        real_audio, real_labels = load_clips(train_clips)
        real_speakers = np.array([c.speaker for c in train_clips])
        n_silence = max(0, int(keyword_mean) - int(np.sum(real_labels == LABELS.index(SILENCE))))
        test_audio, y_eval = load_clips(test_clips)
        x_eval = frontend.batch(test_audio.astype(np.float32) / 32768.0)
        n_test_silence = int(test_mean) - int(np.sum(y_eval == LABELS.index(SILENCE)))
        if n_test_silence > 0:
            eval_rng = np.random.default_rng(options.seed + 1)
            x_eval = np.concatenate(
                [x_eval, silence_features(n_test_silence, frontend, eval_rng, noises)]
            )
            y_eval = np.concatenate([y_eval, np.full(n_test_silence, LABELS.index(SILENCE))])
        description.update(
            data=str(options.data),
            split=split,
            train_speakers=len({c.speaker for c in train_clips if c.label != SILENCE}),
            test_speakers=len({c.speaker for c in test_clips if c.label != SILENCE}),
            train_clips=len(train_clips),
            background_recordings=len(folder.background),
        )
    if use_synth:
        corpus = load_or_synthesize(synth_plan(knob, options.seed))
        synth_train, synth_test = corpus.split()
        synth_audio = synth_train.audio
        synth_labels = label_indices(synth_train.labels)
        description.update(
            synth_words=len(corpus.audio),
            synth_train_voices=len(set(synth_train.speakers)),
            synth_test_voices=len(set(synth_test.speakers)),
        )
        if options.data is None:
            eval_rng = np.random.default_rng(options.seed + 1)
            x_eval = synth_eval_features(synth_test, frontend, eval_rng)
            y_eval = label_indices(synth_test.labels)
            n_test_silence = max(1, len(synth_test.audio) // 12)
            x_eval = np.concatenate(
                [x_eval, silence_features(n_test_silence, frontend, eval_rng, None)]
            )
            y_eval = np.concatenate([y_eval, np.full(n_test_silence, LABELS.index(SILENCE))])
            n_silence = int(np.mean([np.sum(synth_labels == i) for i in range(len(KEYWORDS))]))
            description.update(data="synthesized speech", split="by synthetic voice")
    targets = np.concatenate([real_labels, synth_labels, [LABELS.index(SILENCE)]]).astype(np.int64)
    real_rows = np.arange(len(real_labels))
    synth_rows = len(real_labels) + np.arange(len(synth_labels))
    silence_row = len(targets) - 1

    def make_features(epoch_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        parts, rows = [], []
        for _ in range(copies):
            if len(real_rows):
                parts.append(augmented_features(real_audio, frontend, epoch_rng, plan, noises))
                rows.append(real_rows)
            if len(synth_rows):
                parts.append(
                    augmented_features(synth_audio, frontend, epoch_rng, plan, noises, place=True)
                )
                rows.append(synth_rows)
            if n_silence:
                parts.append(silence_features(n_silence, frontend, epoch_rng, noises))
                rows.append(np.full(n_silence, silence_row))
        return np.concatenate(parts), np.concatenate(rows)

    per_label = np.bincount(targets[np.concatenate([real_rows, synth_rows])], minlength=len(LABELS))
    per_label[LABELS.index(SILENCE)] += n_silence
    description["train_examples_per_epoch"] = int(per_label.sum() * copies)
    description["train_per_label"] = {
        label: int(per_label[i] * copies) for i, label in enumerate(LABELS)
    }
    description["eval_examples"] = int(len(x_eval))
    description["augment"] = asdict(plan)
    return KwsData(
        make_features=make_features,
        targets=targets,
        train_audio=real_audio,
        train_speakers=real_speakers,
        x_eval=x_eval,
        y_eval=np.asarray(y_eval, dtype=np.int64),
        description=description,
    )
