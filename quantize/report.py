"""The float-vs-int8 report: what int8 cost in accuracy, what pruning really saves, per task.

* **Accuracy**: the task's headline metric, float vs int8 on the same evaluation rows, and whether the
  loss is within the task's tolerance (:data:`TOLERANCES`); beyond it, quantization-aware training
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_sim.model_graph import ModelGraph, read_model

SPARSITY_NOTE = (
    "TFLM stores tensors dense: pruned zeros cost the same flash and cycles as any weight. They "
    "pay off only when the model is compressed (gzip for OTA/storage, see gzip_saving_bytes) or "
    "run with sparse kernels, which stock TFLM does not have."
)


@dataclass(frozen=True)
class Tolerance:
    """How much int8 may lose on a task's headline metric before QAT is worth it.

    ``relative`` losses are fractions of the float value (MAE grows by 5 % …); absolute ones are in
    the metric's units (accuracy points as fractions, AUC).
    """

    metric: str
    higher_is_better: bool
    max_loss: float
    relative: bool = False


TOLERANCES = {
    "kws": Tolerance("accuracy", True, 0.02),
    "vibration": Tolerance("auc", True, 0.02),
    "air_quality": Tolerance("mae", False, 0.05, relative=True),
}


def _headline(task: str, metrics: Mapping[str, Any]) -> float | None:
    """The value the tolerance applies to (air quality: the worst target's MAE, relative later)."""
    tolerance = TOLERANCES[task]
    if task == "air_quality":
        targets = metrics.get("targets") or {}
        values = [t.get("mae") for t in targets.values() if isinstance(t, Mapping)]
        values = [float(v) for v in values if v is not None]
        return max(values) if values else None
    value = metrics.get(tolerance.metric)
    return None if value is None else float(value)


def int8_loss(
    task: str, metrics_float: Mapping[str, Any], metrics_int8: Mapping[str, Any]
) -> dict[str, Any]:
    """Headline metric float vs int8, the loss (positive = int8 is worse) and the verdict."""
    if task not in TOLERANCES:
        raise ValueError(f"no int8 tolerance defined for task {task!r}")
    tolerance = TOLERANCES[task]
    result: dict[str, Any] = {
        "metric": tolerance.metric,
        "tolerance": tolerance.max_loss,
        "tolerance_kind": "relative" if tolerance.relative else "absolute",
    }
    if task == "air_quality":
        per_target = {}
        for name, entry in (metrics_float.get("targets") or {}).items():
            int8_entry = (metrics_int8.get("targets") or {}).get(name, {})
            if entry.get("mae") and int8_entry.get("mae") is not None:
                per_target[name] = (int8_entry["mae"] - entry["mae"]) / entry["mae"]
        loss = max(per_target.values()) if per_target else None
        result.update(float=_headline(task, metrics_float), int8=_headline(task, metrics_int8))
        result["per_target_relative_loss"] = per_target
    else:
        before, after = _headline(task, metrics_float), _headline(task, metrics_int8)
        result.update(float=before, int8=after)
        loss = None
        if before is not None and after is not None:
            loss = before - after if tolerance.higher_is_better else after - before
            if tolerance.relative:
                loss /= abs(before) or 1.0
    result["loss"] = None if loss is None else round(float(loss), 6)
    result["within_tolerance"] = None if loss is None else bool(loss <= tolerance.max_loss)
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
