"""Keyword spotting: 12 labels (ten keywords, ``_silence_``, ``_unknown_``) from 1 s of 16 kHz audio.

Data: a Speech Commands-style folder (``--data``, split by speaker, see
:mod:`training.speech_commands`), the synthesized corpus (default, :mod:`training.synth_speech`), or
both (``--data DIR --synth``). Every training clip is augmented ``copies`` times
(:mod:`training.audio_augment`); evaluation clips are not augmented.

Model: a DS-CNN (Zhang et al. 2017, "Hello Edge"; the MLPerf Tiny KWS reference) on 49×10 MFCCs —
one strided 10×4 convolution, then depthwise-separable blocks, average pooling and a dense softmax.
The ``full`` preset (width 48, depth 4) needs ~1.6 M MACs per inference, well under our 2 M budget;
MLPerf's width-64 model needs ~2.7 M.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_sim import console
from device_sim.bundle import Bundle
from device_sim.errors import DataError
from device_sim.features.audio import (
    AudioFeatureConfig,
    AudioFrontEnd,
    default_config,
    with_normalization,
)
from training import audio_augment
from training.audio_augment import AugmentPlan
from training.kws_teacher import TEACHER_NAME
from training.speech_commands import (
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
from training.stage import TrainedModel, TrainOptions
from training.synth_speech import SynthCorpus, SynthPlan, load_or_synthesize

log = logging.getLogger(__name__)

# Knobs per preset; `tinyfleet tune` overrides them by name (see SEARCH_SPACE).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "features": "mfcc",
        "n_mfcc": 10,
        "width": 32,
        "depth": 2,
        "dropout": 0.1,
        "epochs": 20,
        "batch_size": 64,
        "learning_rate": 4e-3,
        "sparsity": 0.3,
        "copies": 3,
        "keyword_renditions": 60,
        "unknown_renditions": 3,
        "fresh_augmentation": 1,
        "holdout": 1,
        "folds": 0,
        "fold": 0,
        "augment": {},  # AugmentPlan field overrides, e.g. {"noise_probability": 0.8}
    },
    "full": {
        "features": "mfcc",
        "n_mfcc": 10,
        "width": 48,
        "depth": 4,
        "dropout": 0.2,
        "epochs": 30,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "sparsity": 0.5,
        "copies": 4,
        "keyword_renditions": 150,
        "unknown_renditions": 10,
        "fresh_augmentation": 1,
        "holdout": 1,
        "folds": 0,
        "fold": 0,
        "augment": {},  # AugmentPlan field overrides, e.g. {"noise_probability": 0.8}
    },
}
SEARCH_SPACE: dict[str, Any] = {
    "width": [16, 24, 32, 48, 64],
    "depth": (1, 5),
    "dropout": (0.0, 0.4),
    "learning_rate": (5e-4, 1e-2),
    "sparsity": (0.0, 0.8),
    "copies": (1, 8),
    "n_mfcc": [10, 13, 16, 20],
    "features": ["mfcc", "log_mel"],
}
# How the device turns per-window posteriors into events (see device_sim/tasks/kws.py).
DETECTION = {
    "hop_ms": 250,
    "average_window_ms": 750,
    "threshold": 0.6,
    "suppression_ms": 1000,
    "minimum_count": 2,
}


def ds_cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    width: int = 48,
    depth: int = 4,
    *,
    first_kernel: tuple[int, int] = (10, 4),
    first_stride: tuple[int, int] = (2, 2),
    dropout: float = 0.2,
) -> Any:
    """A DS-CNN: strided conv, ``depth`` depthwise-separable blocks of ``width`` channels, softmax.

    Convolutions have no bias because batch norm follows; the converter folds BN into them, so the
    int8 graph is CONV/DEPTHWISE_CONV/AVERAGE_POOL/FULLY_CONNECTED/SOFTMAX — all in TFLM.
    """
    from training.keras_env import keras

    layers = keras.layers
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, first_kernel, strides=first_stride, padding="same", use_bias=False)(
        inputs
    )
    x = layers.ReLU()(layers.BatchNormalization()(x))
    if dropout:
        x = layers.Dropout(dropout)(x)
    for _ in range(depth):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(width, (1, 1), use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(n) for n in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"ds_cnn_w{width}_d{depth}")


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference (conv, depthwise, dense; BN is folded away)."""
    from training.keras_env import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


# ---------------------------------------------------------------- data set


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


def _augmented_features(
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


def _silence_features(
    count: int, frontend: AudioFrontEnd, rng: np.random.Generator, noises: list[np.ndarray] | None
) -> np.ndarray:
    clips = np.stack([audio_augment.silence_clip(rng, noises) for _ in range(count)])
    return frontend.batch(clips)


def _synth_eval_features(
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
    return _augmented_features(corpus.audio, frontend, rng, plan, None, place=True)


def _label_indices(labels: np.ndarray | list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def _synth_plan(knob: Callable[[str], Any], seed: int) -> SynthPlan:
    return SynthPlan(
        keyword_renditions=int(knob("keyword_renditions")),
        unknown_renditions=int(knob("unknown_renditions")),
        seed=seed,
    )


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
                [x_eval, _silence_features(n_test_silence, frontend, eval_rng, noises)]
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
        corpus = load_or_synthesize(_synth_plan(knob, options.seed))
        synth_train, synth_test = corpus.split()
        synth_audio = synth_train.audio
        synth_labels = _label_indices(synth_train.labels)
        description.update(
            synth_words=len(corpus.audio),
            synth_train_voices=len(set(synth_train.speakers)),
            synth_test_voices=len(set(synth_test.speakers)),
        )
        if options.data is None:
            eval_rng = np.random.default_rng(options.seed + 1)
            x_eval = _synth_eval_features(synth_test, frontend, eval_rng)
            y_eval = _label_indices(synth_test.labels)
            n_test_silence = max(1, len(synth_test.audio) // 12)
            x_eval = np.concatenate(
                [x_eval, _silence_features(n_test_silence, frontend, eval_rng, None)]
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
                parts.append(_augmented_features(real_audio, frontend, epoch_rng, plan, noises))
                rows.append(real_rows)
            if len(synth_rows):
                parts.append(
                    _augmented_features(synth_audio, frontend, epoch_rng, plan, noises, place=True)
                )
                rows.append(synth_rows)
            if n_silence:
                parts.append(_silence_features(n_silence, frontend, epoch_rng, noises))
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


# ---------------------------------------------------------------- train / score / evaluate


def _speech_teacher_targets(data: KwsData, teacher: Any, options: TrainOptions) -> np.ndarray:
    """Blended soft targets: out-of-fold speech-embedding teacher on the real training clips,
    one-hot labels for synthetic words and silence (the teacher never labels what it was not
    shown). Embeddings of the whole folder are cached once in ``$TINYFLEET_CACHE``."""
    from device_sim.sources.speech_synth import cache_dir
    from training.distill import blend_soft_labels
    from training.kws_teacher import out_of_fold_probabilities
    from training.speech_embedding import cached_embeddings

    n_classes = len(LABELS)
    if options.data is None or not len(data.train_audio):
        raise DataError(
            f"--teacher {TEACHER_NAME} labels real recordings: pass --data with a Speech "
            "Commands-style folder (a synthetic-only build has nothing for it to teach on)"
        )
    embeddings = cached_embeddings(data.train_audio, cache_dir().parent / "kws-embeddings")
    n_real = len(data.train_audio)
    probabilities = np.eye(n_classes, dtype=np.float32)[data.targets]
    probabilities[:n_real] = out_of_fold_probabilities(
        embeddings, data.targets[:n_real], data.train_speakers, n_classes, seed=options.seed
    )
    blended = blend_soft_labels(probabilities, data.targets, teacher, n_classes)
    blended[n_real:] = np.eye(n_classes, dtype=np.float32)[data.targets[n_real:]]
    data.description["teacher_agreement"] = round(
        float(np.mean(np.argmax(probabilities[:n_real], 1) == data.targets[:n_real])), 4
    )
    return blended


def _cosine_schedule(epochs: int, learning_rate: float) -> Callable[[int, float], float]:
    def rate(epoch: int, _current: float) -> float:
        return float(learning_rate * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * epoch / epochs))))

    return rate


def train(options: TrainOptions) -> TrainedModel:
    """Dataset → DS-CNN → fit with pruning → stripped float model with float metrics.

    ``--teacher speech-embedding`` distils from a head on Google's speech embedding
    (:mod:`training.kws_teacher`); any other ``--teacher`` goes through the shared fit loop.
    """
    from training.distill import teacher_from_options
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import keras, seed_everything
    from training.kws_epochs import EpochSource, FreshAugmentation
    from training.pruning import PruningPlan

    seed_everything(options.seed)
    preset = PRESETS[options.preset]

    def knob(name: str) -> Any:
        return options.knob(name, preset[name])

    config = default_config(str(knob("features")), n_mfcc=int(knob("n_mfcc")))
    frontend = config.build()
    started = time.perf_counter()
    data = build_dataset(options, frontend, knob)
    first_x, first_rows = data.make_features(np.random.default_rng(options.seed + 7))
    config = with_normalization(config, first_x)
    frontend = config.build()
    data.x_eval = frontend.normalize(data.x_eval)
    targets: np.ndarray = data.targets
    loss = "sparse_categorical_crossentropy"
    teacher = options.teacher
    speech_teacher = teacher is not None and str(teacher) == TEACHER_NAME
    if speech_teacher:
        teacher = teacher_from_options(options).teacher
        targets = _speech_teacher_targets(data, teacher, options)
        loss = "categorical_crossentropy"
    data_seconds = time.perf_counter() - started
    log.info("kws data: %s (%.1f s)", data.description, data_seconds)

    width, depth = int(knob("width")), int(knob("depth"))
    model = ds_cnn(
        frontend.feature_shape, len(LABELS), width, depth, dropout=float(knob("dropout"))
    )
    epochs = int(knob("epochs"))
    batch_size = int(knob("batch_size"))
    plan = FitPlan(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=float(knob("learning_rate")),
        pruning=PruningPlan(target_sparsity=float(knob("sparsity"))),
    )
    schedule = keras.callbacks.LearningRateScheduler(
        _cosine_schedule(epochs, float(knob("learning_rate")))
    )
    if bool(knob("fresh_augmentation")):
        source = EpochSource(data.make_features, targets, frontend.normalize)
        x_fit: Any = FreshAugmentation(source, batch_size, options.seed)
        y_fit = None
    else:  # the same augmented copies every epoch (the recipe before #13)
        x_fit, y_fit = frontend.normalize(first_x), targets[first_rows]
    result = fit_pruned(
        model,
        x_fit,
        y_fit,
        plan,
        loss=loss,
        metrics=["accuracy"],
        extra_callbacks=[schedule],
        teacher=None if speech_teacher else teacher,
    )
    x_train = frontend.normalize(first_x)
    evaluation = {"x": data.x_eval, "y": data.y_eval}
    head = {
        "labels": list(LABELS),
        "keywords": list(KEYWORDS),
        "silence": SILENCE,
        "unknown": UNKNOWN,
    }

    def float_predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(result.model.predict(x, batch_size=256, verbose=0))

    metrics_float = score(float_predict, evaluation, head)
    order = np.random.default_rng(options.seed).permutation(len(x_train))
    macs = count_macs(result.model)
    return TrainedModel(
        task="kws",
        name=f"kws-dscnn-w{width}-d{depth}",
        model=result.model,
        feature_config=config,
        head=head,
        representative=x_train[order[:300]],
        evaluation=evaluation,
        metrics_float=metrics_float,
        sparsity=result.sparsity,
        provenance={
            "seed": options.seed,
            "preset": options.preset,
            "knobs": {name: knob(name) for name in preset},
            "data": data.description,
            "data_seconds": round(data_seconds, 1),
            "fit_seconds": round(result.seconds, 1),
            "history": result.history,
            "teacher": teacher.describe()
            if hasattr(teacher, "describe")
            else teacher and str(teacher),
        },
        extra={"macs": macs, "detection": dict(DETECTION), "augment": data.description["augment"]},
    )


def score(
    predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray], head: dict
) -> dict[str, Any]:
    """Top-1 accuracy (headline), per-label accuracy (recall), count and confusion matrix.

    ``confusion[i][j]`` counts clips of label ``i`` predicted as label ``j``.
    """
    labels = list(head["labels"])
    y = np.asarray(evaluation["y"], dtype=np.int64)
    if len(y) == 0:
        raise DataError("no evaluation clips: nothing to score")
    predicted = np.argmax(np.asarray(predict(evaluation["x"])), axis=-1)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class = {
        label: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(np.trace(confusion) / len(y)),
        "per_class": per_class,
        "n": int(len(y)),
        "confusion": confusion.tolist(),
    }


def evaluation_set(
    config: AudioFeatureConfig, data: Path | None, seed: int
) -> tuple[dict[str, np.ndarray], str]:
    """Clean features + labels to evaluate a bundle on, and a description.

    A folder with ``testing_list.txt`` is evaluated on its testing split; any other folder on all
    its clips (it is someone else's held-out data). Unknown words are capped at 1.5x the mean
    keyword count, as in training. Without ``_silence_`` clips, silence is cut
    from its background recordings. Without a folder: held-out synthetic voices.
    """
    frontend = config.build()
    rng = np.random.default_rng(seed)
    if data is None:
        corpus = load_or_synthesize(SynthPlan(**_quick_synth_kwargs(), seed=0))
        _, test = corpus.split()
        x = _synth_eval_features(test, frontend, rng)
        y = _label_indices(test.labels)
        n_silence = max(1, len(test.audio) // 12)
        x = np.concatenate([x, _silence_features(n_silence, frontend, rng, None)])
        y = np.concatenate([y, np.full(n_silence, LABELS.index(SILENCE))])
        return {"x": x, "y": y}, "held-out synthetic voices"
    folder = scan_folder(data)
    clips = folder.split("testing") if folder.official_split else folder.clips
    # as in training: a full download's test list is ~40 % unknown words, which would swamp the
    # keyword figures; keep at most 1.5x the mean keyword count (seeded)
    per_keyword = [n for label, n in Counter(c.label for c in clips).items() if label in KEYWORDS]
    clips = cap_per_label(clips, UNKNOWN, int(1.5 * np.mean(per_keyword)) + 1, seed)
    audio, y = load_clips(clips)
    x = frontend.batch(audio.astype(np.float32) / 32768.0)
    if not np.any(y == LABELS.index(SILENCE)) and folder.background:
        noises = load_background(folder.background)
        n_silence = max(1, len(clips) // 11)
        x = np.concatenate([x, _silence_features(n_silence, frontend, rng, noises)])
        y = np.concatenate([y, np.full(n_silence, LABELS.index(SILENCE))])
    where = "testing split" if folder.official_split else "all clips"
    return {"x": x, "y": y}, f"{data} ({where})"


def _quick_synth_kwargs() -> dict[str, int]:
    quick = PRESETS["quick"]
    return {
        "keyword_renditions": quick["keyword_renditions"],
        "unknown_renditions": quick["unknown_renditions"],
    }


def evaluate(bundle: Bundle, data: Path | None, options: TrainOptions) -> dict[str, Any]:
    """``tinyfleet evaluate``: the bundle's int8 model on ``data``; writes a confusion-matrix PNG."""
    from device_sim.features import feature_config_from_dict
    from device_sim.interpreter import Int8Model

    config = feature_config_from_dict(bundle.feature_config)
    if not isinstance(config, AudioFeatureConfig):
        raise DataError(f"{bundle.directory} is not an audio (kws) bundle")
    evaluation, described = evaluation_set(config, data, options.seed)
    model = Int8Model.from_bundle(bundle)
    result = score(model.predict_batch, evaluation, bundle.head)
    png = bundle.directory / "confusion_matrix.png"
    plot_confusion(np.array(result["confusion"]), list(bundle.head["labels"]), png, described)
    return {**result, "labels": list(bundle.head["labels"]), "data": described, "plot": str(png)}


def plot_confusion(confusion: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true label per row) with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(confusion) / max(1, confusion.sum())
    ax.set_title(f"KWS int8: {accuracy:.1%} on {confusion.sum()} clips\n{title}", fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if confusion[i, j]:
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=color
                )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
