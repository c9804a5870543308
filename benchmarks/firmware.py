"""Firmware figures per task bundle, all measured in one run, next to MLPerf Tiny's KWS reference.

For each bundle folder given (default: ``artifacts/*`` that hold a bundle):

* export (C target) to a temporary folder: flash (model + front-end tables), TFLM arena (bisected)
  + margin, RAM (arena + front-end buffers), ops, and the gcc time to compile every generated file;
* profile: MACs, parameters, latency estimates (MLPerf-calibrated cycles per MAC, *estimates*);
* interpreter parity, on random int8 inputs and on the int8 features of simulated windows: TFLM
  vs LiteRT as the device runs it (``Int8Model``: default XNNPACK delegate), vs LiteRT's builtin
  kernels without delegates, and vs its reference kernels — share of outputs that differ, largest
  difference in int8 steps, top-1 agreement;
* C front end vs Python on the task's simulated source: largest feature difference and the share of
  quantized int8 model inputs that differ.

Reference: a DS-CNN with MLPerf Tiny's KWS topology (49x10 MFCC input, conv 64 10x4/2, 4 x
depthwise-separable 64, average pool, 12 classes) is built here with random weights and profiled
the same way, to check the MAC counter against the published 2.66 M MACs and to put the task
models' flash/arena/MACs beside it.

    .venv/bin/python benchmarks/firmware.py [BUNDLE_DIR ...] [--inputs 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sim.bundle import load_bundle  # noqa: E402
from device_sim.features import frontend_from_dict  # noqa: E402
from device_sim.interpreter import Int8Model  # noqa: E402
from device_sim.model_graph import read_model  # noqa: E402
from device_sim.sources import open_source  # noqa: E402
from firmware_bridge.arena import measure_arena  # noqa: E402
from firmware_bridge.export import export_firmware  # noqa: E402
from firmware_bridge.frontend_c import generate_frontend  # noqa: E402
from firmware_bridge.host_check import C_FLAGS, run_frontend  # noqa: E402
from firmware_bridge.profile import profile_bundle, profile_graph  # noqa: E402

STUBS = Path(__file__).resolve().parents[1] / "tests" / "firmware_tflm_stub"


def _litert(model_bytes: bytes, kind):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    index_in = interpreter.get_input_details()[0]["index"]
    index_out = interpreter.get_output_details()[0]["index"]

    def run(q: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(index_in, q)
        interpreter.invoke()
        return interpreter.get_tensor(index_out).astype(int)

    return run


def compare(model_bytes: bytes, quantized_inputs) -> dict:
    """TFLM vs three LiteRT set-ups on the given int8 inputs: the device's (``Int8Model``:
    default XNNPACK delegate), builtin kernels without delegates, and reference kernels."""
    from ai_edge_litert.interpreter import OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    device = Int8Model(model_bytes)
    others = {
        "litert_default": lambda q: device.invoke_quantized(q).astype(int),
        "litert_builtin_no_delegate": _litert(
            model_bytes, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
        "litert_reference": _litert(model_bytes, OpResolverType.BUILTIN_REF),
    }
    tflm = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 20)
    stats = {name: [0, 0, 0] for name in others}  # differing outputs, max steps, same argmax
    total = count = 0
    for q in quantized_inputs:
        q = np.asarray(q, dtype=np.int8).reshape(device.input_spec.shape)
        tflm.set_input(q, 0)
        tflm.invoke()
        micro = tflm.get_output(0).astype(int)
        for name, run in others.items():
            other = run(q)
            stats[name][0] += int(np.count_nonzero(micro != other))
            stats[name][1] = max(stats[name][1], int(np.abs(micro - other).max()))
            stats[name][2] += int(np.argmax(micro) == np.argmax(other))
        total += micro.size
        count += 1
    return {
        "inputs": count,
        **{
            name: {
                "differing_outputs": round(values[0] / max(total, 1), 4),
                "max_steps": values[1],
                "same_argmax": round(values[2] / max(count, 1), 4),
            }
            for name, values in stats.items()
        },
    }


def parity(model_bytes: bytes, inputs: int, seed: int = 0) -> dict:
    """TFLM vs LiteRT on ``inputs`` uniformly random int8 inputs."""
    shape = Int8Model(model_bytes).input_spec.shape
    rng = np.random.default_rng(seed)
    return compare(
        model_bytes, (rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(inputs))
    )


def frontend_check(bundle, windows: int, work: Path) -> dict:
    """C front end vs Python on ``windows`` windows of the task's simulated source."""
    frontend = frontend_from_dict(bundle.feature_config)
    c = generate_frontend(bundle.feature_config)
    source = open_source(bundle, "sim", seed=1)
    step = getattr(frontend, "hop_samples", frontend.window_samples)
    chunk = source.read(frontend.window_samples + step * (windows - 1))
    source.close()
    if chunk is None or len(chunk) < frontend.window_samples:
        return {"note": "the simulated source gave too few samples"}
    starts = range(0, len(chunk) - frontend.window_samples + 1, step)
    raw = np.stack([chunk[s : s + frontend.window_samples] for s in starts][:windows])
    if raw.ndim == 2 and c.channels == 1:
        raw = raw.astype(np.float32)
    usable = np.array([np.all(np.isfinite(w)) for w in raw])
    raw = raw[usable]
    expected = np.stack([np.asarray(frontend(w)).reshape(-1) for w in raw])
    status, features = run_frontend(c, raw, work)
    ok = status == 0
    spec = bundle.input
    q_c = spec.quantize(features[ok])
    q_py = spec.quantize(expected[ok])
    return {
        "real_window_parity": compare(bundle.model_bytes(), q_py),
        "windows": int(len(raw)),
        "refused_by_c": int((~ok).sum()),
        "max_abs_feature_error": float(np.abs(features[ok] - expected[ok]).max())
        if ok.any()
        else None,
        "int8_inputs_differing": round(float(np.mean(q_c != q_py)), 5) if ok.any() else None,
        "int8_input_scale": spec.scale,
    }


def compile_seconds(folder: Path) -> float:
    """Wall time for gcc to compile every generated file (-Werror), TFLM headers stubbed."""
    started = time.perf_counter()
    for source in folder.glob("*.c"):
        subprocess.run(["gcc", *C_FLAGS, "-c", str(source), "-o", "/dev/null"], check=True)
    for source in folder.glob("*.cc"):
        subprocess.run(
            [
                "g++",
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Werror",
                f"-I{STUBS}",
                "-c",
                str(source),
                "-o",
                "/dev/null",
            ],
            check=True,
        )
    return round(time.perf_counter() - started, 2)


def bundle_figures(directory: Path, inputs: int, windows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        copy = tmp_path / "bundle"
        copy.mkdir()
        for name in ("model.tflite", "bundle.json"):
            (copy / name).write_bytes((directory / name).read_bytes())
        bundle = load_bundle(copy)
        started = time.perf_counter()
        export = export_firmware(bundle, tmp_path / "fw")
        export_s = round(time.perf_counter() - started, 2)
        bundle = load_bundle(copy)
        profile = profile_bundle(bundle)
        return {
            "bundle": str(directory),
            "task": bundle.task,
            "model": bundle.identity(),
            "ops": export["ops"],
            "flash_bytes": export["flash_bytes"],
            "model_bytes": export["model_bytes"],
            "frontend_table_bytes": export["frontend_table_bytes"],
            "arena_bytes": export["arena_bytes"],
            "arena_margin_bytes": export["arena_margin_bytes"],
            "ram_bytes": export["ram_bytes"],
            "frontend_ram_bytes": export["frontend_ram_bytes"],
            "macs": profile["macs"],
            "parameters": profile["parameters"],
            "latency": {
                e["target"]: [e["reference_ms"], e["optimized_ms"]] for e in profile["latency"]
            },
            "export_seconds": export_s,
            "gcc_seconds": compile_seconds(tmp_path / "fw"),
            "parity": parity(bundle.model_bytes(), inputs),
            "frontend": frontend_check(bundle, windows, tmp_path / "fe"),
        }


def ds_cnn_model_bytes() -> bytes:
    """MLPerf Tiny's KWS DS-CNN topology with random weights, int8 (49 x 10 MFCC in, 12 out)."""
    from quantize.convert import to_int8_tflite
    from training.keras_env import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    x_in = keras.Input((49, 10, 1))
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x_in)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(64, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = layers.Dense(12, activation="softmax")(layers.Flatten()(x))
    model = keras.Model(x_in, x)
    representative = np.random.default_rng(0).normal(size=(64, 49, 10, 1)).astype(np.float32)
    return to_int8_tflite(model, representative)


def ds_cnn_reference(inputs: int) -> dict:
    """MLPerf Tiny's KWS DS-CNN topology, random weights: MACs, flatbuffer, arena, parity."""
    model_bytes = ds_cnn_model_bytes()
    report = profile_graph(read_model(model_bytes))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ds_cnn.tflite"
        path.write_bytes(model_bytes)
        arena = measure_arena(path)
    return {
        "macs": report["macs"],
        "published_macs": 2_660_000,
        "parameters": report["parameters"],
        "flatbuffer_bytes": len(model_bytes),
        "arena_bytes": arena.arena_bytes,
        "arena_margin_bytes": arena.margin_bytes,
        "latency": {e["target"]: [e["reference_ms"], e["optimized_ms"]] for e in report["latency"]},
        "parity": parity(model_bytes, inputs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path, help="bundle folders")
    parser.add_argument("--inputs", type=int, default=200, help="random int8 inputs for parity")
    parser.add_argument("--windows", type=int, default=64, help="front-end windows per task")
    parser.add_argument("--no-reference", action="store_true", help="skip the DS-CNN reference")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    bundles = args.bundles or sorted(p.parent for p in Path("artifacts").glob("*/bundle.json"))
    result = {
        "bundles": [bundle_figures(path, args.inputs, args.windows) for path in bundles],
        "ds_cnn_reference": None if args.no_reference else ds_cnn_reference(args.inputs),
        "caveat": "latency figures are estimates (MACs x calibrated cycles per MAC), not measured",
    }
    if args.json:
        print(json.dumps(result))
        return 0
    for row in result["bundles"]:
        print(f"== {row['task']} ({row['bundle']})")
        for key in (
            "ops",
            "flash_bytes",
            "model_bytes",
            "frontend_table_bytes",
            "arena_bytes",
            "arena_margin_bytes",
            "ram_bytes",
            "macs",
            "parameters",
            "latency",
            "export_seconds",
            "gcc_seconds",
            "parity",
            "frontend",
        ):
            print(f"  {key}: {row[key]}")
    if result["ds_cnn_reference"]:
        print("== MLPerf Tiny KWS DS-CNN topology (random weights)")
        for key, value in result["ds_cnn_reference"].items():
            print(f"  {key}: {value}")
    print(f"note: {result['caveat']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
