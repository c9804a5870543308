"""The fit loop the three tasks share: train with a pruning schedule, strip, measure sparsity."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from device_sim import console
from training.keras_env import keras
from training.pruning import PruningPlan, measure_sparsity, prune_wrapper, pruning_callbacks, strip

if TYPE_CHECKING:
    from training.distill import Teacher
    from training.stage import TrainOptions

log = logging.getLogger(__name__)


class _EpochProgress(keras.callbacks.Callback):
    """One progress unit per epoch, with the last loss (and validation loss) beside it."""

    def __init__(self, bar: console.Progress) -> None:
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        shown = [f"{k} {logs[k]:.4g}" for k in ("loss", "val_loss") if k in logs]
        self.bar.note(", ".join(shown))
        self.bar.update()


@dataclass(frozen=True)
class FitPlan:
    """Epochs, batch size and learning rate of one training run; ``pruning=None`` trains dense."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    pruning: PruningPlan | None = field(default_factory=PruningPlan)
    early_stopping_patience: int | None = None  # epochs without val improvement; needs validation


def fit_plan(options: TrainOptions, defaults: Mapping[str, Any]) -> FitPlan:
    """The one way a task builds its :class:`FitPlan`.

    ``epochs``, ``batch_size``, ``learning_rate`` and ``sparsity`` (the final pruning sparsity) are
    each the option's override by name (``tinyfleet tune``) or else ``defaults[name]`` (the task's
    preset). Sparsity 0 trains dense (no pruning wrappers, nothing to strip).
    """
    sparsity = float(options.knob("sparsity", defaults["sparsity"]))
    return FitPlan(
        epochs=int(options.knob("epochs", defaults["epochs"])),
        batch_size=int(options.knob("batch_size", defaults["batch_size"])),
        learning_rate=float(options.knob("learning_rate", defaults["learning_rate"])),
        pruning=PruningPlan(target_sparsity=sparsity) if sparsity > 0 else None,
    )


@dataclass
class FitResult:
    model: keras.Model  # stripped: plain layers, pruned weights are exact zeros
    history: dict[str, list[float]]
    sparsity: dict[str, Any]
    seconds: float


def fit_pruned(
    model: keras.Model,
    x: np.ndarray | keras.utils.Sequence,
    y: np.ndarray | None,
    plan: FitPlan,
    *,
    loss: Any,
    metrics: list[Any] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    sample_weight: np.ndarray | None = None,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    teacher: Path | Teacher | None = None,
) -> FitResult:
    """Train ``model`` on (x, y) with magnitude pruning per ``plan`` and return it stripped.

    The pruning schedule is laid over the steps actually trained (epochs × batches), so pruning
    happens even on small datasets. ``teacher`` (a bundle folder or Keras model file, or a
    :class:`training.distill.Teacher` with temperature and weight) turns on knowledge distillation:
    targets, loss, validation targets and metrics are then adapted by :mod:`training.distill`.
    ``x`` may be a ``keras.utils.Sequence`` yielding (inputs, targets) batches (``y=None``), e.g.
    freshly augmented examples every epoch; it then carries its own targets and batch size.
    """
    sequence = isinstance(x, keras.utils.Sequence)
    if teacher is not None and not sequence:
        from training.distill import distillation_targets

        y, loss, validation, metrics = distillation_targets(
            teacher, x, y, loss, validation, metrics
        )
    steps_per_epoch = len(x) if sequence else int(np.ceil(len(x) / plan.batch_size))
    total_steps = steps_per_epoch * plan.epochs
    callbacks: list[keras.callbacks.Callback] = list(extra_callbacks or [])
    if plan.pruning is not None and plan.pruning.target_sparsity > 0:
        model = prune_wrapper(model, plan.pruning, total_steps)
        callbacks += pruning_callbacks()
    if plan.early_stopping_patience and validation is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                patience=plan.early_stopping_patience, restore_best_weights=plan.pruning is None
            )
        )
    model.compile(
        optimizer=keras.optimizers.Adam(plan.learning_rate), loss=loss, metrics=metrics or []
    )
    started = time.perf_counter()
    with console.progress(plan.epochs, "training", "epochs") as bar:
        history = model.fit(
            x,
            y,
            epochs=plan.epochs,
            batch_size=None if sequence else plan.batch_size,
            validation_data=validation,
            sample_weight=sample_weight,
            callbacks=[*callbacks, _EpochProgress(bar)],
            shuffle=not sequence,
            verbose=0,
        )
    seconds = time.perf_counter() - started
    stripped = strip(model) if plan.pruning is not None else model
    sparsity = measure_sparsity(stripped)
    log.info(
        "trained %d epochs in %.1f s, sparsity %.2f", plan.epochs, seconds, sparsity["overall"]
    )
    return FitResult(
        model=stripped,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        sparsity=sparsity,
        seconds=seconds,
    )
