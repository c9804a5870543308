"""Air-quality soft-sensor figures, all measured in one run: build (train → int8 bundle → firmware
export) on the simulator and optionally on a UCI/generic CSV, then per target the int8 MAE beside
float and the two baselines on the same rows, int8/float and int8/best-baseline MAE ratios, band
accuracy, flatbuffer and TFLM arena bytes, training time, and the device-side cost per hourly window
(front end + int8 inference, medians over windows streamed from the bundle's source).

    .venv/bin/python benchmarks/air_quality.py [--preset quick|full] [--seed 0] [--data FILE.csv]
                                               [--no-sim] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sim.features import frontend_from_dict  # noqa: E402
from device_sim.interpreter import Int8Model  # noqa: E402
from device_sim.sources.air_quality import open_source  # noqa: E402
from device_sim.tasks.air_quality import TaskRuntime  # noqa: E402


def device_cost(bundle, kind: str, path: Path | None, windows: int = 500) -> dict[str, float]:
    """Median ms per window (front end, int8 inference) over windows streamed from a source."""
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    runtime = TaskRuntime(bundle)
    source = open_source(bundle, kind, path=path, seed=bundle.provenance.get("seed", 0))
    window = source.read(frontend.window_samples)
    features_ms, invoke_ms = [], []
    invalid = 0
    while len(features_ms) < windows:
        if runtime.check_window(window) is None:
            started = time.perf_counter()
            features = frontend(window)
            middle = time.perf_counter()
            output = model.predict(features)
            features_ms.append((middle - started) * 1000)
            invoke_ms.append((time.perf_counter() - middle) * 1000)
            runtime.process(output, features)
        else:
            invalid += 1
        row = source.read(1)
        if row is None or len(row) == 0:
            break
        window = np.concatenate([window[1:], row])
    return {
        "frontend_ms_median": round(statistics.median(features_ms), 4),
        "invoke_ms_median": round(statistics.median(invoke_ms), 4),
        "windows": len(features_ms),
        "invalid_windows": invalid,
    }


def measure(label: str, options, out: Path) -> dict:
    from tinyfleet.commands.stages import build

    started = time.perf_counter()
    bundle = build("air_quality", options, out, export=True)
    build_seconds = time.perf_counter() - started
    int8, flt = bundle.metrics["int8"], bundle.metrics["float"]
    targets = {}
    for name, entry in int8["targets"].items():
        best = min(entry["baseline_linear_mae"], entry["baseline_gbm_mae"])
        float_mae = flt["targets"][name]["mae"]
        targets[name] = {
            "unit": entry["unit"],
            "int8_mae": round(entry["mae"], 4),
            "float_mae": round(float_mae, 4),
            "linear_mae": round(entry["baseline_linear_mae"], 4),
            "gbm_mae": round(entry["baseline_gbm_mae"], 4),
            "int8_over_float": round(entry["mae"] / float_mae, 4),
            "int8_over_best_baseline": round(entry["mae"] / best, 4),
            "r2_int8": round(entry["r2"], 4),
            "n_test": entry["n_test"],
        }
    kind, path = ("file", options.data) if options.data else ("sim", None)
    return {
        "data": label,
        "preset": options.preset,
        "targets": targets,
        "band_accuracy": round(int8["band_accuracy"], 4),
        "tflite_bytes": bundle.sizes.get("tflite_bytes"),
        "arena_bytes": bundle.sizes.get("arena_bytes"),
        "parameters": bundle.sizes.get("parameters"),
        "sparsity": round(float(bundle.sparsity.get("overall", 0.0)), 3),
        "train_seconds": bundle.provenance.get("train_seconds"),
        "build_seconds": round(build_seconds, 1),
        "split": {k: int8["split"][k] for k in ("train_until", "test_from", "n_train", "n_test")},
        "device": device_cost(bundle, kind, path),
    }


def render(result: dict) -> str:
    lines = [
        f"== {result['data']} (preset {result['preset']}): flatbuffer {result['tflite_bytes']} B, "
        f"arena {result['arena_bytes']} B, {result['parameters']} params, sparsity "
        f"{result['sparsity']}, train {result['train_seconds']} s, band accuracy "
        f"{result['band_accuracy']:.3f}",
        f"   {'target':10s} {'int8':>8s} {'float':>8s} {'linear':>8s} {'gbm':>8s} "
        f"{'int8/flt':>8s} {'int8/best':>9s}  n_test",
    ]
    for name, t in result["targets"].items():
        lines.append(
            f"   {name:10s} {t['int8_mae']:8.4g} {t['float_mae']:8.4g} {t['linear_mae']:8.4g} "
            f"{t['gbm_mae']:8.4g} {t['int8_over_float']:8.3f} {t['int8_over_best_baseline']:9.3f}"
            f"  {t['n_test']}  ({t['unit']})"
        )
    device = result["device"]
    lines.append(
        f"   device: front end {device['frontend_ms_median']} ms, int8 invoke "
        f"{device['invoke_ms_median']} ms (medians of {device['windows']} windows; "
        f"{device['invalid_windows']} windows refused for missing inputs)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="also build on this UCI/generic CSV")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulator build")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from training.stage import TrainOptions

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sim:
            options = TrainOptions(preset=args.preset, seed=args.seed)
            runs.append(measure(f"simulator(seed={args.seed})", options, Path(tmp) / "sim"))
        if args.data:
            options = TrainOptions(data=args.data, preset=args.preset, seed=args.seed)
            runs.append(measure(str(args.data), options, Path(tmp) / "file"))
    if args.json:
        print(json.dumps({"air_quality": runs}))
    else:
        print("\n".join(render(run) for run in runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
