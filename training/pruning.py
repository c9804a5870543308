"""Magnitude pruning with tfmot, and honest sparsity measurement of the stripped weights.

tfmot's ``PolynomialDecay`` defaults to ``frequency=100`` steps: on small datasets the schedule would
end before a single pruning step, so the frequency is derived from the steps actually trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.keras_env import keras, tfmot


@dataclass(frozen=True)
class PruningPlan:
    """Prune to ``target_sparsity`` between ``begin_fraction`` and ``end_fraction`` of training."""

    target_sparsity: float = 0.5
    begin_fraction: float = 0.3
    end_fraction: float = 0.8
    min_weights: int = 64  # smaller layers (biases, tiny heads) are left dense


def prune_wrapper(model: keras.Model, plan: PruningPlan, total_steps: int) -> keras.Model:
    """Wrap the prunable layers of ``model`` so that ``fit`` prunes them on a schedule."""
    begin = int(total_steps * plan.begin_fraction)
    end = max(begin + 1, int(total_steps * plan.end_fraction))
    frequency = max(1, (end - begin) // 10)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=plan.target_sparsity,
        begin_step=begin,
        end_step=end,
        frequency=frequency,
    )

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        prunable = isinstance(
            layer,
            (
                keras.layers.Dense,
                keras.layers.Conv1D,
                keras.layers.Conv2D,
                keras.layers.DepthwiseConv2D,
            ),
        )
        if prunable and layer.count_params() >= plan.min_weights:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    return keras.models.clone_model(model, clone_function=wrap)


def pruning_callbacks() -> list[keras.callbacks.Callback]:
    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model: keras.Model) -> keras.Model:
    """Remove the pruning wrappers, leaving the zeros in ordinary kernels."""
    return tfmot.sparsity.keras.strip_pruning(model)


def measure_sparsity(model: keras.Model) -> dict[str, object]:
    """Fraction of exactly-zero weights in each kernel of the stripped model, and overall."""
    per_layer: dict[str, float] = {}
    zeros = total = 0
    for layer in model.layers:
        for weight in layer.weights:
            if "kernel" not in weight.name:
                continue
            values = np.asarray(weight.numpy())
            per_layer[weight.name] = float(np.mean(values == 0))
            zeros += int(np.sum(values == 0))
            total += int(values.size)
    return {"overall": zeros / total if total else 0.0, "per_layer": per_layer, "weights": total}
