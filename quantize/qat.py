"""Quantization-aware training (tfmot), for when post-training int8 loses more than the tolerance.

Why self-distillation: the quantize stage has the trained float model and its calibration windows,
not the training labels. Fine-tuning the fake-quantized copy to reproduce the float model's own
outputs on those windows minimises exactly what we want to remove — the int8 error — and needs no
labels, so one function serves all three tasks (classifier, autoencoder, regressor).

Pruned zeros survive: with ``preserve_sparsity`` (the default) tfmot's
``Default8BitPrunePreserveQuantizeScheme`` keeps every zero weight at zero during fine-tuning, so the
int8 model keeps the sparsity the training stage paid for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from device_sim.errors import TinyfleetError
from quantize.convert import to_int8_tflite
from training.keras_env import keras, tfmot

log = logging.getLogger(__name__)


class QatError(TinyfleetError):
    """The model cannot be made quantization-aware (a layer tfmot does not support)."""


@dataclass(frozen=True)
class QatPlan:
    """Fine-tuning settings: a few epochs at a small learning rate on the calibration windows."""

    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-4
    # tfmot's activation ranges start at [-6, 6] and follow an EMA with decay 0.999: they need
    # ~1000+ steps to settle, so small calibration sets are cycled for at least this many steps.
    min_steps: int = 1500
    preserve_sparsity: bool = True
    seed: int = 0


def quantization_aware(model: keras.Model, *, preserve_sparsity: bool = True) -> keras.Model:
    """A copy of ``model`` with fake-quant nodes (int8 weights and activations) for fine-tuning."""
    qkeras = tfmot.quantization.keras
    try:
        annotated = qkeras.quantize_annotate_model(model)
        if preserve_sparsity:
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
            return qkeras.quantize_apply(annotated, scheme)
        return qkeras.quantize_apply(annotated)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise QatError(
            f"quantization-aware training does not support this model ({exc}); keep "
            "post-training int8, or replace the unsupported layer (Lambda/custom layers) with "
            "standard Keras layers"
        ) from exc


def fine_tune(model: keras.Model, samples: np.ndarray, plan: QatPlan = QatPlan()) -> keras.Model:
    """Fine-tune a quantization-aware copy of ``model`` to match its own float outputs."""
    if len(samples) == 0:
        raise QatError("QAT needs calibration windows; the trained model has none")
    samples = np.asarray(samples, dtype=np.float32)
    keras.utils.set_random_seed(plan.seed)
    targets = np.asarray(model.predict(samples, verbose=0, batch_size=256), dtype=np.float32)
    qat = quantization_aware(model, preserve_sparsity=plan.preserve_sparsity)
    qat.compile(optimizer=keras.optimizers.Adam(plan.learning_rate), loss="mse")
    before = float(qat.evaluate(samples, targets, verbose=0, batch_size=256))
    steps_per_epoch = int(np.ceil(len(samples) / plan.batch_size))
    epochs = max(plan.epochs, int(np.ceil(plan.min_steps / steps_per_epoch)))
    qat.fit(
        samples,
        targets,
        epochs=epochs,
        batch_size=plan.batch_size,
        shuffle=True,
        verbose=0,
    )
    after = float(qat.evaluate(samples, targets, verbose=0, batch_size=256))
    log.info(
        "QAT: %d epochs, fake-quant MSE to the float outputs %.3g → %.3g", epochs, before, after
    )
    return qat


def qat_int8_tflite(
    model: keras.Model, representative: np.ndarray, plan: QatPlan = QatPlan()
) -> bytes:
    """Fine-tune with QAT, then convert to the same full-integer int8 flatbuffer as PTQ."""
    return to_int8_tflite(fine_tune(model, representative, plan), representative)
