"""The quantize stage: trained float model → int8 bundle with float-vs-int8 metrics on the same rows."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle, write_bundle
from device_sim.errors import TinyfleetError
from device_sim.interpreter import Int8Model
from device_sim.monitoring import record_reference
from quantize.convert import to_int8_tflite
from quantize.report import int8_loss, quantization_report, render_report
from training.stage import TrainedModel
from training.tasks import task_module

log = logging.getLogger(__name__)


def _float_predictor(model):
    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, verbose=0, batch_size=256))

    return predict


def _maybe_qat(trained, task, metrics_float, ptq, qat: bool):
    """PTQ's (bytes, model, metrics, "ptq"), or QAT's when requested, needed and better."""
    model_bytes, int8, metrics_int8 = ptq
    verdict = int8_loss(trained.task, metrics_float, metrics_int8)
    if verdict["within_tolerance"] is not False:
        return model_bytes, int8, metrics_int8, "ptq"
    if not qat:
        log.warning(
            "int8 loses %s on %s (tolerance %s): rerun the quantize stage with QAT",
            verdict["loss"],
            verdict["metric"],
            verdict["tolerance"],
        )
        return model_bytes, int8, metrics_int8, "ptq"
    from quantize.qat import qat_int8_tflite

    qat_bytes = qat_int8_tflite(trained.model, trained.representative)
    qat_int8 = Int8Model(qat_bytes)
    qat_metrics = task.score(qat_int8.predict_batch, trained.evaluation, trained.head)
    qat_verdict = int8_loss(trained.task, metrics_float, qat_metrics)
    if qat_verdict["loss"] is not None and qat_verdict["loss"] < verdict["loss"]:
        log.info(
            "QAT: int8 loss %s → %s; keeping the QAT model", verdict["loss"], qat_verdict["loss"]
        )
        return qat_bytes, qat_int8, qat_metrics, "qat"
    log.warning(
        "QAT did not beat post-training int8 (%s vs %s); keeping PTQ",
        qat_verdict["loss"],
        verdict["loss"],
    )
    return model_bytes, int8, metrics_int8, "ptq"


def quantize_trained(trained: TrainedModel, out_dir: str | Path, *, qat: bool = False) -> Bundle:
    """Convert ``trained`` to int8, score float and int8 with the task's own metric, write the bundle.

    With ``qat``, when post-training int8 loses more than the task's tolerance
    (``TaskSpec.headline.int8_tolerance``, see :func:`quantize.report.int8_loss`), quantization-aware training is tried and kept only if it
    scores better; ``metrics["quantization"]`` records the loss, the verdict and the method used.
    """
    task = task_module(trained.task)
    model_bytes = to_int8_tflite(trained.model, trained.representative)
    int8 = Int8Model(model_bytes)
    metrics_float = trained.metrics_float or task.score(
        _float_predictor(trained.model), trained.evaluation, trained.head
    )
    metrics_int8 = task.score(int8.predict_batch, trained.evaluation, trained.head)
    log.info("float %s | int8 %s", metrics_float, metrics_int8)
    model_bytes, int8, metrics_int8, method = _maybe_qat(
        trained, task, metrics_float, (model_bytes, int8, metrics_int8), qat
    )
    calibrate = getattr(task, "calibrate_head", None)
    if calibrate is not None:  # e.g. vibration: the anomaly threshold of the int8 model itself
        trained.head = calibrate(int8.predict_batch, trained.evaluation, trained.head)
        metrics_int8 = task.score(int8.predict_batch, trained.evaluation, trained.head)
    report = quantization_report(
        trained.task,
        model_bytes,
        metrics_float,
        metrics_int8,
        float_sparsity=trained.sparsity.get("overall"),
    )
    log.info("%s", render_report(report))
    sizes = {
        "tflite_gzip_bytes": len(gzip.compress(model_bytes, compresslevel=9)),
        "gzip_saving_bytes": report["size"]["gzip_saving_bytes"],
        "parameters": int(trained.model.count_params()),
    }
    bundle = write_bundle(
        out_dir,
        model_bytes,
        task=trained.task,
        name=trained.name,
        input=int8.input_spec,
        output=int8.output_spec,
        feature_config=trained.feature_config.to_dict(),
        head=trained.head,
        metrics={
            "float": metrics_float,
            "int8": metrics_int8,
            "quantization": {**report["accuracy"], "method": method},
        },
        sizes=sizes,
        sparsity={**trained.sparsity, "int8_weights": report["int8_weight_sparsity"]},
        provenance=trained.provenance,
        extra=trained.extra,
    )
    return _with_monitoring_reference(bundle, trained.evaluation)


def _with_monitoring_reference(bundle: Bundle, evaluation: dict[str, np.ndarray]) -> Bundle:
    """The bundle with the reference statistics ``tinyfleet monitor`` compares devices with: the
    int8 model's outputs on the held-out set, summarised (device_sim.monitoring). A task without
    drift statistics, or a held-out set too small for them, leaves the bundle as it is."""
    from device_sim.tasks import spec_for

    if spec_for(bundle.task).drift is None:
        return bundle
    try:
        return record_reference(bundle, evaluation)
    except TinyfleetError as exc:
        log.warning("no monitoring reference recorded in %s: %s", bundle.directory, exc)
        return bundle
