"""The KWS recipe: data set → DS-CNN → fit with pruning and a cosine schedule → float metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from device_sim.errors import DataError
from device_sim.features.audio import default_config
from training.kws.data import KwsData, build_dataset
from training.kws.ds_cnn import ds_cnn
from training.kws.evaluate import score
from training.kws.features import standardized
from training.kws.presets import DETECTION, PRESETS
from training.kws.speech_commands import KEYWORDS, LABELS, SILENCE, UNKNOWN
from training.kws.teacher import TEACHER_NAME
from training.stage import TrainedModel, TrainOptions

log = logging.getLogger(__name__)

# The learning rate decays to this fraction of its start (training.schedule.cosine_decay).
LEARNING_RATE_FLOOR = 0.05


def _speech_teacher_targets(data: KwsData, teacher: Any, options: TrainOptions) -> np.ndarray:
    """Blended soft targets: out-of-fold speech-embedding teacher on the real training clips,
    one-hot labels for synthetic words and silence (the teacher never labels what it was not
    shown). Embeddings of the whole folder are cached once in ``$TINYFLEET_CACHE``."""
    from device_sim.sources.kws_speech_synth import cache_dir
    from training.distill import blend_soft_labels
    from training.kws.speech_embedding import cached_embeddings
    from training.kws.teacher import out_of_fold_probabilities

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


def train(options: TrainOptions) -> TrainedModel:
    """Dataset → DS-CNN → fit with pruning → stripped float model with float metrics.

    ``--teacher speech-embedding`` distils from a head on Google's speech embedding
    (:mod:`training.kws.teacher`); any other ``--teacher`` goes through the shared fit loop.
    """
    from training.distill import teacher_from_options
    from training.fit import fit_plan, fit_pruned
    from training.keras_env import seed_everything
    from training.kws.epochs import EpochSource, FreshAugmentation
    from training.macs import keras_macs
    from training.schedule import cosine_callback

    seed_everything(options.seed)
    preset = PRESETS[options.preset]

    def knob(name: str) -> Any:
        return options.knob(name, preset[name])

    config = default_config(str(knob("features")), n_mfcc=int(knob("n_mfcc")))
    frontend = config.build()
    started = time.perf_counter()
    data = build_dataset(options, frontend, knob)
    first_x, first_rows = data.make_features(np.random.default_rng(options.seed + 7))
    config = standardized(config, first_x, str(knob("normalization")))
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
    plan = fit_plan(options, preset)
    schedule = cosine_callback(plan.learning_rate, plan.epochs, LEARNING_RATE_FLOOR)
    if bool(knob("fresh_augmentation")):
        source = EpochSource(data.make_features, targets, frontend.normalize)
        x_fit: Any = FreshAugmentation(source, plan.batch_size, options.seed)
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
    macs = keras_macs(result.model)  # the one MAC counter (device_sim.model_graph)
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
