"""Real image sizes and an emulated run per bundle: what the linker and QEMU say, not estimates.

For each bundle folder given (copied first: export records its sizes in bundle.json):

* ``export --target cortex-m4``: the exported Makefile builds TFLM (CMSIS-NN kernels, only the
  model's) and the application for a Cortex-M4F; ``arm-none-eabi-size`` text/data/bss;
* the self-test image with a few windows (real Speech Commands audio for KWS, the task simulator
  otherwise) run in ``qemu-system-arm -M mps2-an386 -icount shift=0``: int8 outputs compared with
  the TFLM Python interpreter, the SysTick count around ``Invoke()`` and QEMU's own count of the
  instructions ``Invoke()`` retires (``firmware_bridge/qemu_insn.py``; a proxy for cycles, not
  cycles: QEMU does not model the M4's pipeline or flash wait states);
* RAM per task: arena (+ margin) + front-end state and buffers, as the export summary states.

``--ds-cnn`` adds a KWS bundle with MLPerf Tiny's DS-CNN topology (random weights) on the default
MFCC front end, the size of the full KWS preset.

    .venv/bin/python benchmarks/firmware_linked.py BUNDLE_DIR ... [--ds-cnn] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_sim.bundle import load_bundle  # noqa: E402
from firmware_bridge.build import build, run_selftest  # noqa: E402
from firmware_bridge.errors import FirmwareError  # noqa: E402
from firmware_bridge.export import export_firmware  # noqa: E402
from firmware_bridge.qemu_insn import symbol_address  # noqa: E402
from firmware_bridge.selftest import simulated_values  # noqa: E402


def ds_cnn_bundle(directory: Path):
    """MLPerf Tiny's KWS DS-CNN (random weights) on the default 49 x 10 MFCC front end."""
    from firmware import ds_cnn_model_bytes  # benchmarks/firmware.py
    from firmware_fixtures import bundle_for, speech_stream

    from device_sim.features.audio import default_config, with_normalization

    stream = speech_stream(3.0)
    config = default_config("mfcc")
    clips = np.stack([stream[s : s + 16000] for s in range(0, len(stream) - 16000 + 1, 4000)])
    config = with_normalization(config, config.build().batch(clips))
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    return bundle_for(
        directory,
        ds_cnn_model_bytes(),
        task="kws",
        feature_config=config.to_dict(),
        head={"labels": [*labels, "_silence_", "_unknown_"]},
    )


def selftest_values(bundle) -> np.ndarray:
    if bundle.task == "kws":
        from firmware_fixtures import speech_stream

        return speech_stream(1.5)
    return simulated_values(bundle, 3)


def figures(bundle_dir: Path, work: Path) -> dict:
    from firmware_fixtures import python_reference

    copy = work / "bundle"
    shutil.copytree(bundle_dir, copy)
    bundle = load_bundle(copy)
    values = selftest_values(bundle)
    started = time.perf_counter()
    summary = export_firmware(bundle, work / "fw", target="cortex-m4", selftest_values=values)
    image = build(work / "fw", "cortex-m4", app=f"tinyfleet_{bundle.task}", selftest=True)
    started_qemu = time.perf_counter()
    results = run_selftest(image, count_instructions=True)
    qemu_s = time.perf_counter() - started_qemu
    reference = python_reference(bundle, results)
    outputs = np.stack([r.output for r in results]) if results else np.zeros((0,))
    ticks = [r.ticks for r in results if r.ticks is not None]
    instructions = [r.instructions for r in results if r.instructions is not None]
    # The front end's share: from the call that completes a window to the model input.
    try:
        fe_call = "tinyfleet_frontend_push"
        symbol_address(image.path, fe_call)
    except FirmwareError:  # a whole-window front end
        fe_call = "tinyfleet_frontend"
    frontend = run_selftest(image, count_instructions=True, span=(fe_call, "tinyfleet_on_input"))
    frontend_instructions = [r.instructions for r in frontend]
    return {
        "bundle": str(bundle_dir),
        "task": bundle.task,
        "name": bundle.name,
        "model_bytes": summary["model_bytes"],
        "arena_size_bytes": summary["arena_size_bytes"],
        "frontend_ram_bytes": summary["frontend_ram_bytes"],
        "ram_bytes": summary["ram_bytes"],
        "linked": summary["linked"],
        "selftest_image": {
            "text_bytes": image.text_bytes,
            "data_bytes": image.data_bytes,
            "bss_bytes": image.bss_bytes,
        },
        "inferences": len(results),
        "identical_to_tflm": bool(results) and np.array_equal(outputs, reference["tflm"]),
        "identical_to_int8model": bool(results) and np.array_equal(outputs, reference["litert"]),
        "systick_per_invoke_median": float(np.median(ticks)) if ticks else None,
        "instructions_per_invoke_median": float(np.median(instructions)) if instructions else None,
        "frontend_instructions_per_window_median": float(np.median(frontend_instructions)),
        "instructions_per_systick": (
            round(float(np.sum(instructions) / np.sum(ticks)), 2)
            if ticks and instructions
            else None
        ),
        "qemu_seconds": round(qemu_s, 1),
        "export_build_seconds": round(started_qemu - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path)
    parser.add_argument("--ds-cnn", action="store_true", help="add MLPerf's DS-CNN KWS topology")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundles = list(args.bundles)
        if args.ds_cnn:
            bundles.append(ds_cnn_bundle(Path(tmp) / "ds_cnn").directory)
        for index, directory in enumerate(bundles):
            work = Path(tmp) / f"b{index}"
            work.mkdir()
            rows.append(figures(directory, work))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        "| bundle | model B | arena B | front-end RAM B | RAM total B | M4 text | data | bss |"
        " identical | SysTick/invoke | instructions/invoke (QEMU) | front-end instructions/window |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        linked = row["linked"]
        print(
            f"| {row['task']} {row['name']} | {row['model_bytes']:,} | {row['arena_size_bytes']:,} "
            f"| {row['frontend_ram_bytes']:,} | {row['ram_bytes']:,} | {linked['text_bytes']:,} | "
            f"{linked['data_bytes']:,} | {linked['bss_bytes']:,} | {row['identical_to_tflm']} | "
            f"{row['systick_per_invoke_median']} | {row['instructions_per_invoke_median']} | "
            f"{row['frontend_instructions_per_window_median']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
