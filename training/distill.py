"""Knowledge distillation: train a micromodel on a larger teacher's outputs instead of bare labels.

The shared fit loop (:func:`training.fit.fit_pruned`) calls :func:`distillation_targets` when a
teacher is given, so task modules only pass ``teacher=options.teacher``. What changes:

* **classification** (sparse or one-hot labels, softmax/sigmoid output): the targets become
  ``weight * softmax(log p_teacher / T) + (1 - weight) * one_hot(y)`` and the loss becomes the
  matching categorical cross-entropy. Cross-entropy is linear in its target, so this is exactly the
  classic ``weight * CE(teacher) + (1 - weight) * CE(labels)``; unlike Hinton et al. the student's
  own logits are not divided by ``T`` (the int8 model runs at T = 1, so it is trained at T = 1).
* **regression / autoencoders** (MSE, MAE, Huber, custom losses …): the student matches the
  teacher in the model's output space, ``(1 - weight) * loss(y, ŷ) + weight * mean((ŷ - t)²)``
  with ``t = teacher(x)`` packed next to ``y``, because a task's targets need not be in the output
  space (air quality decodes z-score outputs to µg/m³ inside its loss). ``T`` does not apply.

The teacher is a bundle folder (its ``float_model.keras``; or, when only the int8 model exists, its
``model.tflite`` run through :class:`device_sim.interpreter.Int8Model`) or a ``.keras``/``.h5``/
``.tflite`` file. It must take the student's features: train both with the same feature config.

Knobs (read from ``TrainOptions.hyperparameters`` by :func:`teacher_from_options`):
``distill_temperature`` (default 2.0, > 0) and ``distill_weight`` (default 0.5, in [0, 1]).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from device_sim.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 2.0
DEFAULT_WEIGHT = 0.5
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class Teacher:
    """A teacher model file/folder plus how strongly and how softly to follow it.

    It is path-like (``os.fspath(teacher)`` is the teacher's path), so code that records
    ``str(options.teacher)`` in provenance keeps working when a ``Teacher`` replaces a ``Path``.
    """

    path: Path
    temperature: float = DEFAULT_TEMPERATURE
    weight: float = DEFAULT_WEIGHT

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"distill_temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"distill_weight must be within [0, 1], got {self.weight}")

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return os.fspath(self.path)

    def describe(self) -> dict[str, Any]:
        """What provenance should record about the teacher."""
        return {"path": str(self.path), "temperature": self.temperature, "weight": self.weight}


class DistillationTargets(NamedTuple):
    """What ``fit`` trains on instead of the task's own (y, loss, validation, metrics)."""

    y: np.ndarray
    loss: Any
    validation: tuple[np.ndarray, np.ndarray] | None
    metrics: list[Any] | None


def teacher_from_options(options: Any) -> Any:
    """Return ``options`` with its ``teacher`` path turned into a :class:`Teacher` with the knobs.

    ``tinyfleet tune`` and the distillation benchmark call this so ``distill_temperature`` and
    ``distill_weight`` from ``TrainOptions.hyperparameters`` reach the fit loop through
    ``teacher=options.teacher``, without task modules having to know about them.
    """
    teacher = getattr(options, "teacher", None)
    if teacher is None or isinstance(teacher, Teacher):
        return options
    resolved = Teacher(
        path=Path(teacher),
        temperature=float(options.knob("distill_temperature", DEFAULT_TEMPERATURE)),
        weight=float(options.knob("distill_weight", DEFAULT_WEIGHT)),
    )
    return replace(options, teacher=resolved)


def load_teacher_predictor(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Return (predict(x) -> outputs, description) for a teacher folder or model file."""
    path = Path(os.fspath(path))
    if path.is_dir():
        float_model = path / "float_model.keras"
        if float_model.is_file():
            return _keras_predictor(float_model), f"float Keras model {float_model}"
        if (path / "model.tflite").is_file():
            from device_sim.bundle import load_bundle
            from device_sim.interpreter import Int8Model

            bundle = load_bundle(path)
            return Int8Model.from_bundle(bundle).predict_batch, f"int8 bundle {path}"
        raise ConfigError(
            f"teacher folder {path} holds neither float_model.keras nor model.tflite: pass the "
            "--out folder of `tinyfleet build`/`train`, or a .keras/.h5/.tflite file"
        )
    if not path.is_file():
        raise ConfigError(
            f"teacher {path} does not exist: pass a bundle folder or a .keras/.h5/.tflite file"
        )
    if path.suffix.lower() in _KERAS_SUFFIXES:
        return _keras_predictor(path), f"Keras model {path}"
    if path.suffix.lower() == ".tflite":
        from device_sim.interpreter import Int8Model

        return Int8Model(path).predict_batch, f"TFLite model {path}"
    raise ConfigError(
        f"teacher {path} has suffix {path.suffix!r}; expected a bundle folder or a "
        ".keras/.h5/.tflite file"
    )


def _keras_predictor(path: Path) -> Any:
    from training.keras_env import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load teacher {path} as a Keras model: {exc}") from exc

    def predict(x: np.ndarray) -> np.ndarray:
        expected = tuple(model.input_shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise ConfigError(
                f"teacher {path} takes inputs of shape {expected} but the student's features are "
                f"{tuple(x.shape[1:])}: train the teacher with the same feature config"
            )
        return np.asarray(model.predict(x, verbose=0, batch_size=256))

    return predict


def distillation_targets(
    teacher: str | os.PathLike[str] | Teacher,
    x: np.ndarray,
    y: np.ndarray,
    loss: Any,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    metrics: list[Any] | None = None,
) -> DistillationTargets:
    """Blend the teacher's outputs on ``x`` into the targets and adapt loss, validation, metrics.

    ``teacher`` is a :class:`Teacher` or a path (then the default temperature and weight apply).
    Validation targets stay the true labels (one-hot encoded if the loss switched to categorical
    cross-entropy), so validation loss still measures the task, not agreement with the teacher.
    """
    if not isinstance(teacher, Teacher):
        teacher = Teacher(path=Path(os.fspath(teacher)))
    predict, description = load_teacher_predictor(teacher.path)
    outputs = np.asarray(predict(np.asarray(x, dtype=np.float32)), dtype=np.float32)
    if len(outputs) != len(x):
        raise ConfigError(
            f"teacher {teacher.path} returned {len(outputs)} rows for {len(x)} inputs"
        )
    kind, from_logits = _loss_kind(loss)
    log.info(
        "distilling from %s (%s loss, T=%.2f, weight=%.2f)",
        description,
        kind,
        teacher.temperature,
        teacher.weight,
    )
    if kind == "sparse_categorical":
        n_classes = outputs.shape[-1]
        hard = _one_hot(y, n_classes, teacher.path)
        soft = _soften(outputs, teacher.temperature)
        targets = teacher.weight * soft + (1.0 - teacher.weight) * hard
        if validation is not None:
            validation = (validation[0], _one_hot(validation[1], n_classes, teacher.path))
        return DistillationTargets(
            targets.astype(np.float32),
            _categorical_loss(from_logits),
            validation,
            _categorical_metrics(metrics),
        )
    if kind == "categorical":
        _check_shapes(outputs, y, teacher.path)
        soft = _soften(outputs, teacher.temperature)
        targets = teacher.weight * soft + (1.0 - teacher.weight) * np.asarray(y, np.float32)
        return DistillationTargets(targets.astype(np.float32), loss, validation, metrics)
    if kind == "binary":
        _check_shapes(outputs, y, teacher.path)
        probabilities = _binary_probabilities(outputs)
        soft = _sigmoid(_logit(probabilities) / teacher.temperature)
        targets = teacher.weight * soft + (1.0 - teacher.weight) * np.asarray(y, np.float32)
        return DistillationTargets(targets.astype(np.float32), loss, validation, metrics)
    return _regression_targets(teacher, predict, outputs, x, y, loss, validation, metrics)


def blend_soft_labels(
    teacher_probabilities: np.ndarray, y: np.ndarray, teacher: Teacher, n_classes: int
) -> np.ndarray:
    """``weight * softmax(log p / T) + (1 - weight) * one_hot(y)``: the classification blend of
    :func:`distillation_targets` for a teacher whose probabilities were computed elsewhere (the KWS
    speech-embedding teacher reads audio, not the student's features)."""
    soft = _soften(np.asarray(teacher_probabilities, dtype=np.float32), teacher.temperature)
    hard = _one_hot(y, n_classes, teacher.path)
    return (teacher.weight * soft + (1.0 - teacher.weight) * hard).astype(np.float32)


def _regression_targets(
    teacher: Teacher,
    predict: Any,
    outputs: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    loss: Any,
    validation: tuple[np.ndarray, np.ndarray] | None,
    metrics: list[Any] | None,
) -> DistillationTargets:
    """Regression: match the teacher in the model's *output* space, keep the task loss on ``y``.

    A task's targets need not live in the output space (air quality trains z-score outputs
    against concentrations in µg/m³ through a decoding, NaN-masked loss), so blending teacher
    outputs into ``y`` would mix units. Instead ``y`` and the teacher's outputs travel together
    (concatenated on the last axis) and the loss is
    ``(1 - weight) · task_loss(y, ŷ) + weight · mean((ŷ - teacher(x))²)``.
    """
    y = np.asarray(y, dtype=np.float32)
    if outputs.ndim != 2 or y.ndim != 2:
        raise ConfigError(
            f"distilling a regression needs 2-D targets and outputs, got {y.shape} and "
            f"{outputs.shape} from teacher {teacher.path}"
        )
    packed = np.concatenate([y, outputs.astype(np.float32)], axis=-1)
    if validation is not None:
        x_val = np.asarray(validation[0], dtype=np.float32)
        val_outputs = np.asarray(predict(x_val), dtype=np.float32)
        validation = (
            x_val,
            np.concatenate([np.asarray(validation[1], np.float32), val_outputs], axis=-1),
        )
    split = y.shape[-1]
    return DistillationTargets(
        packed,
        _output_matching_loss(loss, split, teacher.weight),
        validation,
        _unpacking_metrics(metrics, split),
    )


def _output_matching_loss(loss: Any, split: int, weight: float) -> Any:
    from training.keras_env import keras, tf

    task_loss = keras.losses.get(loss)

    def distilled_loss(packed, y_pred):
        y_true, teacher_out = packed[..., :split], packed[..., split:]
        matching = tf.reduce_mean(tf.square(y_pred - teacher_out), axis=-1)
        return (1.0 - weight) * task_loss(y_true, y_pred) + weight * matching

    return distilled_loss


def _unpacking_metrics(metrics: list[Any] | None, split: int) -> list[Any] | None:
    """Metrics see the true targets only (the first ``split`` columns of the packed targets)."""
    if not metrics:
        return metrics
    from training.keras_env import keras

    adapted = []
    for metric in metrics:
        if isinstance(metric, keras.metrics.Metric):
            log.warning("metric %s is dropped while distilling a regression", metric.name)
            continue
        function = keras.metrics.get(metric)
        name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")

        def unpacked(packed, y_pred, function=function):
            return function(packed[..., :split], y_pred)

        unpacked.__name__ = str(name)
        adapted.append(unpacked)
    return adapted


def _loss_kind(loss: Any) -> tuple[str, bool]:
    """Classify a Keras loss (name, function or instance) and whether it expects logits."""
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = name or getattr(loss, "__name__", "") or type(loss).__name__
    name = str(name).lower()
    from_logits = False
    get_config = getattr(loss, "get_config", None)
    if callable(get_config):
        from_logits = bool(get_config().get("from_logits", False))
    if "sparse_categorical" in name or "sparsecategorical" in name:
        return "sparse_categorical", from_logits
    if "categorical_crossentropy" in name or "categoricalcrossentropy" in name:
        return "categorical", from_logits
    if "binary_crossentropy" in name or "binarycrossentropy" in name:
        return "binary", from_logits
    return "regression", False


def _one_hot(labels: np.ndarray, n_classes: int, origin: Path) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ConfigError(
            f"labels run 0..{int(labels.max())} but teacher {origin} has {n_classes} outputs: "
            "the teacher must be trained on the same label set as the student"
        )
    return np.eye(n_classes, dtype=np.float32)[labels]


def _soften(outputs: np.ndarray, temperature: float) -> np.ndarray:
    """Teacher outputs (probabilities or logits) → class probabilities at ``temperature``."""
    outputs = outputs.astype(np.float64)
    is_probability = outputs.min() >= 0.0 and np.allclose(outputs.sum(axis=-1), 1.0, atol=0.02)
    logits = np.log(np.clip(outputs, 1e-7, 1.0)) if is_probability else outputs
    scaled = logits / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _binary_probabilities(outputs: np.ndarray) -> np.ndarray:
    if outputs.min() >= 0.0 and outputs.max() <= 1.0:
        return outputs
    return _sigmoid(outputs)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _check_shapes(outputs: np.ndarray, y: np.ndarray, origin: Path) -> None:
    if outputs.shape != np.shape(y):
        raise ConfigError(
            f"teacher {origin} outputs shape {outputs.shape[1:]} but the student's targets are "
            f"{np.shape(y)[1:]}: the teacher must solve the same task with the same outputs"
        )


def _categorical_loss(from_logits: bool) -> Any:
    from training.keras_env import keras

    return keras.losses.CategoricalCrossentropy(from_logits=from_logits)


def _categorical_metrics(metrics: list[Any] | None) -> list[Any] | None:
    """Sparse accuracy metrics would misread one-hot targets; swap them for categorical ones.

    The names stay the same so ``history`` keys do not depend on whether a teacher was used.
    """
    if not metrics:
        return metrics
    from training.keras_env import keras

    adapted = []
    for metric in metrics:
        name = metric if isinstance(metric, str) else getattr(metric, "name", "")
        if str(name).startswith("sparse_categorical_accuracy"):
            adapted.append(keras.metrics.CategoricalAccuracy(name=str(name)))
        elif str(name).startswith("sparse_top_k"):
            adapted.append(keras.metrics.TopKCategoricalAccuracy(name=str(name)))
        else:
            adapted.append(metric)
    return adapted
