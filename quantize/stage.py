"""The quantize stage: trained float model → int8 bundle with float-vs-int8 metrics on the same rows."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, write_bundle
from device_sim.interpreter import Int8Model
from quantize.convert import to_int8_tflite
from training.stage import TrainedModel
from training.tasks import task_module

log = logging.getLogger(__name__)


def _float_predictor(model):
    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, verbose=0, batch_size=256))

    return predict


def quantize_trained(trained: TrainedModel, out_dir: str | Path) -> Bundle:
    """Convert ``trained`` to int8, score float and int8 with the task's own metric, write the bundle."""
    task = task_module(trained.task)
    model_bytes = to_int8_tflite(trained.model, trained.representative)
    int8 = Int8Model(model_bytes)
    metrics_float = trained.metrics_float or task.score(
        _float_predictor(trained.model), trained.evaluation, trained.head
    )
    metrics_int8 = task.score(int8.predict_batch, trained.evaluation, trained.head)
    log.info("float %s | int8 %s", metrics_float, metrics_int8)
    sizes = {
        "tflite_gzip_bytes": len(gzip.compress(model_bytes, compresslevel=9)),
        "parameters": int(trained.model.count_params()),
    }
    return write_bundle(
        out_dir,
        model_bytes,
        task=trained.task,
        name=trained.name,
        input=int8.input_spec,
        output=int8.output_spec,
        feature_config=trained.feature_config.to_dict(),
        head=trained.head,
        metrics={"float": metrics_float, "int8": metrics_int8},
        sizes=sizes,
        sparsity=trained.sparsity,
        provenance=trained.provenance,
        extra=trained.extra,
    )
