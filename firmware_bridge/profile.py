"""What a model costs on a microcontroller, read from its flatbuffer: per-layer and total figures.

Per layer: op, multiply-accumulates (MACs), parameters (constant tensor elements) and activation
bytes (non-constant inputs + output). Totals: flash (flatbuffer + C front-end tables), RAM (measured
TFLM arena + margin + front-end buffers), MACs. Latency is an *estimate* from cycles-per-MAC
assumptions calibrated against one published figure (the issue's MLPerf Tiny KWS numbers: DS-CNN,
2.66 M MACs, 182 ms on a Cortex-M4 @ 120 MHz with TFLM reference kernels, 62.9 ms with an optimized
library): 8.21 and 2.84 cycles per MAC. Tiny models are dominated by per-layer overhead (requantize,
im2col, interpreter dispatch), which a MACs-only model underestimates; measure on the device before
trusting a number closer than a factor of ~2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.model_graph import ModelGraph, layer_macs, read_model
from firmware_bridge.errors import FirmwareError
from firmware_bridge.frontend_c import generate_frontend

# The calibration point (published figure quoted in the issue, MLPerf Tiny KWS, DS-CNN).
MLPERF_KWS_MACS = 2.66e6
MLPERF_KWS_CLOCK_HZ = 120e6
MLPERF_KWS_REFERENCE_S = 0.182
MLPERF_KWS_OPTIMIZED_S = 0.0629
REFERENCE_CYCLES_PER_MAC = MLPERF_KWS_REFERENCE_S * MLPERF_KWS_CLOCK_HZ / MLPERF_KWS_MACS
OPTIMIZED_CYCLES_PER_MAC = MLPERF_KWS_OPTIMIZED_S * MLPERF_KWS_CLOCK_HZ / MLPERF_KWS_MACS

CAVEAT = (
    "estimates, not measurements: MACs x cycles-per-MAC calibrated on MLPerf Tiny's KWS DS-CNN "
    "(2.66 M MACs: 182 ms reference / 62.9 ms optimized on a Cortex-M4 @ 120 MHz, published "
    "figures); M7 and ESP32-S3 factors are assumptions; small models are overhead-bound, so "
    "real latency is usually higher. Measure on the device."
)


@dataclass(frozen=True)
class Target:
    """A microcontroller and the cycles per MAC assumed for TFLM reference / optimized kernels."""

    name: str
    clock_hz: float
    reference_cycles_per_mac: float
    optimized_cycles_per_mac: float
    optimized_library: str
    basis: str


TARGETS = (
    Target(
        "Cortex-M4F @ 80 MHz",
        80e6,
        REFERENCE_CYCLES_PER_MAC,
        OPTIMIZED_CYCLES_PER_MAC,
        "CMSIS-NN",
        "calibrated: same core as the MLPerf Tiny figure, scaled by clock",
    ),
    Target(
        "Cortex-M7 @ 480 MHz",
        480e6,
        REFERENCE_CYCLES_PER_MAC / 1.3,
        OPTIMIZED_CYCLES_PER_MAC / 1.6,
        "CMSIS-NN",
        "assumption: dual-issue M7 needs 1/1.3 of the M4's cycles for scalar C kernels and 1/1.6 "
        "for CMSIS-NN's SIMD kernels (caches warm, weights in flash behind the ART/TCM)",
    ),
    Target(
        "ESP32-S3 @ 240 MHz",
        240e6,
        REFERENCE_CYCLES_PER_MAC,
        OPTIMIZED_CYCLES_PER_MAC / 2.0,
        "ESP-NN",
        "assumption: single-issue LX7 like the M4 for scalar C; ESP-NN's 128-bit SIMD doubles "
        "CMSIS-NN's MACs per cycle (weights in flash via cache, PSRAM unused)",
    ),
)


def layer_rows(graph: ModelGraph) -> list[dict[str, Any]]:
    """One dict per layer: name, op, MACs, parameters, parameter and activation bytes."""
    rows = []
    for operator in graph.operators:
        constants = [graph.tensors[i] for i in operator.inputs if i >= 0]
        constants = [t for t in constants if t.is_constant]
        data_in = [
            graph.tensors[i] for i in operator.inputs if i >= 0 and not graph.tensors[i].is_constant
        ]
        outputs = [graph.tensors[i] for i in operator.outputs]
        rows.append(
            {
                "layer": outputs[0].name if outputs else f"op{operator.index}",
                "op": operator.op,
                "output_shape": list(outputs[0].shape) if outputs else [],
                "macs": layer_macs(graph, operator),
                "parameters": int(sum(np.prod(t.shape) if t.shape else 1 for t in constants)),
                "parameter_bytes": int(sum(t.size_bytes for t in constants)),
                "input_bytes": int(sum(t.size_bytes for t in data_in)),
                "output_bytes": int(sum(t.size_bytes for t in outputs)),
                "activation_bytes": int(
                    sum(t.size_bytes for t in data_in) + sum(t.size_bytes for t in outputs)
                ),
            }
        )
    return rows


def latency_estimates(macs: int) -> list[dict[str, Any]]:
    """Reference- and optimized-kernel latency (ms) per target for ``macs`` MACs."""
    estimates = []
    for target in TARGETS:
        estimates.append(
            {
                "target": target.name,
                "reference_ms": round(
                    macs * target.reference_cycles_per_mac / target.clock_hz * 1e3, 3
                ),
                "optimized_ms": round(
                    macs * target.optimized_cycles_per_mac / target.clock_hz * 1e3, 3
                ),
                "optimized_library": target.optimized_library,
                "reference_cycles_per_mac": round(target.reference_cycles_per_mac, 3),
                "optimized_cycles_per_mac": round(target.optimized_cycles_per_mac, 3),
                "basis": target.basis,
            }
        )
    return estimates


def profile_graph(graph: ModelGraph) -> dict[str, Any]:
    """Layers and model-only totals of a parsed model (no bundle needed)."""
    rows = layer_rows(graph)
    macs = int(sum(row["macs"] for row in rows))
    weights = [t for t in graph.constant_tensors()]
    return {
        "layers": rows,
        "macs": macs,
        "parameters": int(sum(row["parameters"] for row in rows)),
        "model_bytes": graph.size_bytes,
        "constant_bytes": int(sum(t.size_bytes for t in weights)),
        "peak_layer_activation_bytes": max((row["activation_bytes"] for row in rows), default=0),
        "latency": latency_estimates(macs),
        "latency_caveat": CAVEAT,
    }


def profile_bundle(bundle: Bundle) -> dict[str, Any]:
    """Per-layer figures and totals (flash, RAM, MACs, latency estimates) of a bundle's model."""
    graph = read_model(bundle.model_bytes())
    report = profile_graph(graph)
    try:
        frontend = generate_frontend(bundle.feature_config)
    except FirmwareError as exc:
        frontend = None
        report["frontend_note"] = str(exc)
    arena = bundle.sizes.get("arena_bytes")
    margin = bundle.sizes.get("arena_margin_bytes") or 0
    frontend_ram = frontend.ram_bytes if frontend else None
    arena_total = int(math.ceil((arena + margin) / 16) * 16) if arena is not None else None
    totals = {
        "flash_bytes": graph.size_bytes + (frontend.table_bytes if frontend else 0),
        "model_bytes": graph.size_bytes,
        "frontend_table_bytes": frontend.table_bytes if frontend else None,
        "ram_bytes": arena_total + frontend_ram
        if arena_total is not None and frontend_ram is not None
        else None,
        "arena_bytes": arena,
        "arena_margin_bytes": margin if arena is not None else None,
        "frontend_buffer_bytes": frontend.buffer_bytes if frontend else None,
        "frontend_window_bytes": (
            frontend.streaming_window_bytes or frontend.window_bytes if frontend else None
        ),
        "frontend_feature_bytes": frontend.feature_bytes if frontend else None,
        "macs": report["macs"],
        "parameters": report["parameters"],
    }
    totals["scope_note"] = (
        "flash = model + front-end tables (checked against gcc's .rodata); RAM = arena + margin + "
        "front-end buffers, window and features (checked against .bss). Not counted: TFLM's code "
        "and kernels, the interpreter and resolver objects, stack, your application."
    )
    if frontend is not None and frontend.streaming_window_bytes is not None:
        # main.cc streams audio; a caller of tinyfleet_frontend() on whole windows needs more.
        whole = frontend.whole_window_ram_bytes
        totals["frontend_whole_window_ram_bytes"] = whole
        totals["ram_bytes_whole_window"] = arena_total + whole if arena_total is not None else None
    if arena is None:
        totals["arena_note"] = (
            "arena not measured: run `tinyfleet export` on a host with tflite-micro (x86_64)"
        )
    # What the linker measured when the bundle was exported for a build target (tinyfleet export
    # --target host/cortex-m4), beside the estimates above: the difference in flash is TFLM's
    # interpreter, the model's kernels and the C library, which the estimate leaves out.
    linked = {
        target: {**sizes, "runtime_code_bytes": sizes["flash_bytes"] - totals["flash_bytes"]}
        for target, sizes in (bundle.sizes.get("linked") or {}).items()
    }
    int8_sparsity = bundle.sparsity.get("int8_weights") or {}
    return {
        "bundle": str(bundle.directory),
        "task": bundle.task,
        "model": bundle.identity(),
        "totals": totals,
        "linked": linked,
        # What the quantize stage measured (quantize/report.py), repeated here for one-stop reading.
        "quantization": bundle.metrics.get("quantization"),
        "int8_weight_sparsity": int8_sparsity.get("overall"),
        "tflite_gzip_bytes": bundle.sizes.get("tflite_gzip_bytes"),
        **report,
    }
