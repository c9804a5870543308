"""The float-vs-int8 report: what int8 cost in accuracy, what pruning really saves, per task.

* **Accuracy**: the task's headline metric, float vs int8 on the same evaluation rows, and whether the
  loss is within the task's tolerance (``TaskSpec.headline`` in ``device_sim/tasks/<task>/spec.py``);
  beyond it, quantization-aware training
  (:mod:`quantize.qat`) is the remedy.
* **Sparsity**, measured where it matters — in the int8 weight tensors of the flatbuffer, not in the
  Keras kernels: int8 rounding turns small weights into extra zeros, so int8 sparsity is at least the
  pruned fraction.
* **Size**: raw ``.tflite`` bytes beside gzip bytes, and the bytes the zeros save once compressed.
  TFLM stores every tensor dense: **pruned zeros do not shrink flash or speed up inference** by
  themselves. They pay off only when the model is compressed (OTA download, compressed storage) or
  run with sparse kernels, which stock TFLM does not have.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import Any

import numpy as np

from device_sim.model_graph import ModelGraph, read_model
from device_sim.tasks import spec_for

SPARSITY_NOTE = (
    "TFLM stores tensors dense: pruned zeros cost the same flash and cycles as any weight. They "
    "pay off only when the model is compressed (gzip for OTA/storage, see gzip_saving_bytes) or "
    "run with sparse kernels, which stock TFLM does not have."
)


def int8_loss(
    task: str, metrics_float: Mapping[str, Any], metrics_int8: Mapping[str, Any]
) -> dict[str, Any]:
    """Headline metric float vs int8, the loss (positive = int8 is worse) and the verdict.

    The metric, its direction and tolerance come from the task's spec (``spec.headline``); a task
    judged on its worst part (air quality: the worst target) also reports every part's loss.
    """
    spec = spec_for(task)
    headline = spec.headline
    result: dict[str, Any] = {
        "metric": headline.metric,
        "tolerance": headline.int8_tolerance,
        "tolerance_kind": "relative" if headline.relative else "absolute",
    }
    before, after = spec.headline_of(metrics_float), spec.headline_of(metrics_int8)
    result.update(float=before, int8=after)
    if spec.per_part_loss is not None:
        per_part = spec.per_part_loss(metrics_float, metrics_int8)
        loss = max(per_part.values()) if per_part else None
        result[f"per_{spec.part_name}_relative_loss"] = per_part
    else:
        loss = None
        if before is not None and after is not None:
            loss = before - after if headline.higher_is_better else after - before
            if headline.relative:
                loss /= abs(before) or 1.0
    result["loss"] = None if loss is None else round(float(loss), 6)
    result["within_tolerance"] = None if loss is None else bool(loss <= headline.int8_tolerance)
    return result


def _weight_tensors(graph: ModelGraph) -> list:
    """int8 constant tensors with 2+ dimensions: kernels and dense weights (not biases/shapes)."""
    return [t for t in graph.constant_tensors() if t.dtype == "int8" and len(t.shape) >= 2]


def int8_weight_sparsity(graph: ModelGraph) -> dict[str, Any]:
    """Fraction of weights that are exactly zero in the int8 flatbuffer, per tensor and overall.

    Weights are quantized symmetrically (zero point 0), so a zero float weight is the int8 value 0.
    """
    per_tensor = {}
    zeros = total = 0
    for tensor in _weight_tensors(graph):
        count = int(tensor.data.size)
        nonzero = int(np.count_nonzero(tensor.data))
        per_tensor[tensor.name] = round(1.0 - nonzero / count, 4)
        zeros += count - nonzero
        total += count
    return {
        "overall": round(zeros / total, 4) if total else 0.0,
        "zero_weights": zeros,
        "weights": total,
        "per_tensor": per_tensor,
    }


def _gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def size_report(model_bytes: bytes, graph: ModelGraph | None = None, seed: int = 0) -> dict:
    """Raw and gzip bytes, and how many gzip bytes the zero weights save.

    The saving is measured, not modelled: the zeros of each int8 weight tensor are replaced by
    random non-zero int8 values drawn from that tensor's own non-zero weights, the model is
    gzipped again, and the difference is what sparsity buys once compressed. Raw size does not
    change at all.
    """
    graph = graph or read_model(model_bytes)
    rng = np.random.default_rng(seed)
    dense = bytearray(model_bytes)
    for tensor in _weight_tensors(graph):
        data = tensor.data.tobytes()
        offset = model_bytes.find(data)
        nonzero = tensor.data[tensor.data != 0]
        if offset < 0 or nonzero.size == 0 or nonzero.size == tensor.data.size:
            continue
        filled = tensor.data.copy()
        mask = filled == 0
        filled[mask] = rng.choice(nonzero, size=int(mask.sum()))
        dense[offset : offset + len(data)] = filled.tobytes()
    raw_gzip = _gzip_size(model_bytes)
    return {
        "tflite_bytes": len(model_bytes),
        "tflite_gzip_bytes": raw_gzip,
        "gzip_ratio": round(raw_gzip / len(model_bytes), 4),
        "dense_equivalent_gzip_bytes": _gzip_size(bytes(dense)),
        "gzip_saving_bytes": _gzip_size(bytes(dense)) - raw_gzip,
        "raw_saving_bytes": 0,
        "note": SPARSITY_NOTE,
    }


def quantization_report(
    task: str,
    model_bytes: bytes,
    metrics_float: Mapping[str, Any],
    metrics_int8: Mapping[str, Any],
    *,
    float_sparsity: float | None = None,
) -> dict[str, Any]:
    """Everything the quantize stage reports for one task: accuracy, sparsity, sizes."""
    graph = read_model(model_bytes)
    sparsity = int8_weight_sparsity(graph)
    if float_sparsity is not None:
        sparsity["float_kernels_overall"] = round(float(float_sparsity), 4)
    return {
        "task": task,
        "accuracy": int8_loss(task, metrics_float, metrics_int8),
        "int8_weight_sparsity": sparsity,
        "size": size_report(model_bytes, graph),
    }


def render_report(report: Mapping[str, Any]) -> str:
    """A few readable lines for logs and the CLI."""
    accuracy = report["accuracy"]
    size = report["size"]
    sparsity = report["int8_weight_sparsity"]
    verdict = {True: "within tolerance", False: "EXCEEDS tolerance", None: "n/a"}[
        accuracy["within_tolerance"]
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    return "\n".join(
        [
            f"{report['task']}: {accuracy['metric']} float {fmt(accuracy['float'])} → int8 "
            f"{fmt(accuracy['int8'])} (loss {fmt(accuracy['loss'])}, {accuracy['tolerance_kind']} "
            f"tolerance {accuracy['tolerance']}: {verdict})",
            f"int8 weight sparsity {sparsity['overall']:.1%} of {sparsity['weights']} weights",
            f"size {size['tflite_bytes']} B raw, {size['tflite_gzip_bytes']} B gzip; zeros save "
            f"{size['gzip_saving_bytes']} B gzipped, 0 B raw",
            f"note: {size['note']}",
        ]
    )
