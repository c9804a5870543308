"""Firmware commands: ``export`` (bundle → C/C++/Arduino files) and ``profile`` (MCU cost).

Neither imports TensorFlow: they read the bundle's flatbuffer and, for the arena, run tflite-micro.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from device_sim.bundle import load_bundle
from tinyfleet.output import add_json_flag, emit, render_mapping


def _kib(value: int | None) -> str:
    return "not measured" if value is None else f"{value} B ({value / 1024:.1f} KiB)"


def render_export(result: Mapping[str, Any]) -> str:
    lines = [
        f"wrote {len(result['files'])} files ({result['target']}) to {result['out_dir']}",
        f"ops: {', '.join(result['ops'])}",
        f"flash: {_kib(result['flash_bytes'])} = model {result['model_bytes']} B + front-end "
        f"tables {result['frontend_table_bytes']} B",
        f"arena (TFLM, measured): {_kib(result['arena_bytes'])} = activations "
        f"{result['arena_activation_bytes']} B + persistent {result['arena_persistent_bytes']} B; "
        f"kArenaSize with margin: {_kib(result['arena_size_bytes'])}",
        f"RAM total (arena + front end + its buffers): {_kib(result['ram_bytes'])} = arena "
        f"{result['arena_size_bytes']} B + front end {result['frontend_ram_bytes']} B",
        f"note: {result['arena_note']}",
    ]
    linked = result.get("linked")
    if linked:
        lines.append(
            f"linked ({linked['target']}, {linked['build_seconds']} s): text {linked['text_bytes']} B"
            f", data {linked['data_bytes']} B, bss {linked['bss_bytes']} B -> flash "
            f"{_kib(linked['flash_bytes'])}, static RAM {_kib(linked['static_ram_bytes'])}"
        )
    return "\n".join(lines)


def render_profile(result: Mapping[str, Any]) -> str:
    lines = [f"{result['task']} model {result['model']['name']} {result['model']['version']}", ""]
    lines.append(f"{'layer':<12} {'op':<20} {'MACs':>10} {'params':>8} {'act. B':>8}  output")
    for index, row in enumerate(result["layers"]):
        lines.append(
            f"{index:<12} {row['op']:<20} {row['macs']:>10} {row['parameters']:>8} "
            f"{row['activation_bytes']:>8}  {row['output_shape']}"
        )
    totals = result["totals"]
    lines += ["", "totals (estimates from the flatbuffer and the front end):"]
    lines.append(render_mapping(totals, 1))
    for target, linked in (result.get("linked") or {}).items():
        lines.append(
            f"linked {target} (measured by the linker): text {linked['text_bytes']} B, data "
            f"{linked['data_bytes']} B, bss {linked['bss_bytes']} B; flash {linked['flash_bytes']} B"
            f" vs estimate {totals['flash_bytes']} B (+{linked['runtime_code_bytes']} B TFLM, "
            f"kernels and libc), static RAM {linked['static_ram_bytes']} B vs estimate "
            f"{totals['ram_bytes']} B"
        )
    quantization = result.get("quantization")
    if quantization:

        def fmt(value: Any) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        lines.append(
            f"int8 vs float: {quantization['metric']} {fmt(quantization['float'])} → "
            f"{fmt(quantization['int8'])} (loss {fmt(quantization['loss'])}, within tolerance "
            f"{quantization['within_tolerance']}, {quantization.get('method', 'ptq')}); int8 "
            f"weight sparsity {result['int8_weight_sparsity']}, gzip {result['tflite_gzip_bytes']} B"
        )
    lines += ["", "latency estimates (ms):"]
    for estimate in result["latency"]:
        lines.append(
            f"  {estimate['target']:<22} reference {estimate['reference_ms']:>9.2f}   "
            f"{estimate['optimized_library']} {estimate['optimized_ms']:>9.2f}"
        )
    lines.append(f"  caveat: {result['latency_caveat']}")
    return "\n".join(lines)


def run_export(args: argparse.Namespace) -> int:
    from firmware_bridge.export import export_firmware

    bundle = load_bundle(args.bundle)
    out = args.out or args.bundle / "firmware"
    values = None
    if args.selftest_windows:
        from firmware_bridge.selftest import simulated_values

        values = simulated_values(bundle, args.selftest_windows)
    summary = export_firmware(bundle, out, target=args.target, selftest_values=values)
    emit(summary, args.json, render_export)
    return 0


def run_profile(args: argparse.Namespace) -> int:
    from firmware_bridge.profile import profile_bundle

    emit(profile_bundle(load_bundle(args.bundle)), args.json, render_profile)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export",
        help="write the firmware files for a bundle (C, C++ or an Arduino library)",
        description="Model as an aligned C array, model_config.h, op_resolver.h with exactly the "
        "model's ops, the C99 front end and a TFLM main.cc. The tensor arena is measured in the "
        "real TFLM interpreter (smallest that runs, 16-byte steps) plus a stated margin, and "
        "recorded in bundle.json.",
    )
    export.add_argument("--bundle", type=Path, required=True, help="bundle folder")
    export.add_argument("--out", type=Path, help="output folder (default: BUNDLE/firmware)")
    export.add_argument(
        "--target",
        choices=("c", "cpp", "arduino", "host", "cortex-m4"),
        default="c",
        help="firmware flavour; host and cortex-m4 also build it with the exported Makefile "
        "against the TFLM sources ($TINYFLEET_THIRD_PARTY, default ../shared/third_party) and record "
        "the linker's text/data/bss in bundle.json",
    )
    export.add_argument(
        "--selftest-windows",
        type=int,
        default=0,
        metavar="N",
        help="embed N windows from the task's simulator in selftest_data.h for `make selftest` "
        "(prints the int8 input/output of every inference; `make TARGET=cortex-m4 run-selftest` "
        "runs it in qemu-system-arm)",
    )
    add_json_flag(export)
    export.set_defaults(func=run_export)

    profile = subparsers.add_parser(
        "profile",
        help="per-layer MACs/parameters/activations, flash/RAM totals, latency estimates",
        description="Reads the bundle's flatbuffer: per layer op, MACs, parameters and activation "
        "bytes; totals for flash (model + front-end tables), RAM (measured arena + front-end "
        "buffers) and MACs; latency estimates for Cortex-M4F, Cortex-M7 and ESP32-S3 calibrated on "
        "MLPerf Tiny's KWS figure (estimates, not measurements).",
    )
    profile.add_argument("--bundle", type=Path, required=True, help="bundle folder")
    add_json_flag(profile)
    profile.set_defaults(func=run_profile)
