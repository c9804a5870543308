"""Vibration-anomaly figures, all measured in one run: train (full preset by default) → int8 bundle,
then AUC overall and at the smallest fault severity (normal data includes speed/load changes),
false-alarm rate at the calibrated threshold, int8 vs float AUC, flatbuffer bytes, baselines,
alarm-level false alarms on a long healthy stream, detection delay after a fault onset, and the
device-side cost per window (front end + int8 inference, medians).

    .venv/bin/python benchmarks/vibration.py [--preset full|quick] [--seed 0] [--json]
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
from device_sim.sources.vibration import SimSource  # noqa: E402
from device_sim.sources.vibration_sim import (  # noqa: E402
    FAULT_KINDS,
    SEVERITIES,
    FaultSchedule,
    simulate_recording,
)
from device_sim.tasks.vibration import TaskRuntime, reconstruction_error  # noqa: E402


def stream(bundle, fault: FaultSchedule, seed: int, seconds: float) -> list[tuple[float, str]]:
    """Run the device loop on a simulated machine; return (time s, raised/cleared) events."""
    runtime = TaskRuntime(bundle)
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    source = SimSource(
        bundle.feature_config["sample_rate"], bundle.feature_config["axes"], seed=seed, fault=fault
    )
    window = source.read(frontend.window_samples)
    events = []
    while source.time_s < seconds:
        if runtime.check_window(window) is None:
            features = frontend(window)
            result = runtime.process(model.predict(features), features)
            if result.event:
                events.append((round(source.time_s, 2), result.event["state"]))
        window = np.concatenate([window[runtime.hop_samples :], source.read(runtime.hop_samples)])
    return events


def device_cost(bundle, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds per window for the front end and for one int8 inference (this host)."""
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    window = simulate_recording(1.0, seed=99)[: frontend.window_samples]
    fe_times, nn_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        features = frontend(window)
        fe_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.predict(features)
        nn_times.append(time.perf_counter() - started)
    return {
        "frontend_ms_median": round(statistics.median(fe_times) * 1e3, 3),
        "int8_inference_ms_median": round(statistics.median(nn_times) * 1e3, 3),
    }


def incipient_rms_change() -> dict[str, float]:
    """How much each fault at the smallest severity raises overall RMS (same seed, same schedule)."""
    base = simulate_recording(20.0, seed=7)
    result = {}
    for kind in FAULT_KINDS:
        faulty = simulate_recording(20.0, kind=kind, severity=SEVERITIES["incipient"], seed=7)
        result[kind] = round(float(np.sqrt((faulty**2).mean() / (base**2).mean()) - 1) * 100, 1)
    return result


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--healthy-minutes", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="override a SEARCH_SPACE knob",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from quantize.stage import quantize_trained
    from training.stage import TrainOptions
    from training.vibration import train

    started = time.perf_counter()
    knobs = tuple((k, _number(v)) for k, v in (item.split("=", 1) for item in args.set))
    trained = train(TrainOptions(preset=args.preset, seed=args.seed, hyperparameters=knobs))
    train_seconds = time.perf_counter() - started
    out = Path(tempfile.mkdtemp(prefix="vibration-bench-"))
    trained.save(out)
    bundle = quantize_trained(trained, out)
    float_m, int8_m = bundle.metrics["float"], bundle.metrics["int8"]

    int8 = Int8Model.from_bundle(bundle)
    cal = trained.evaluation["x_calibration"]
    int8_cal = reconstruction_error(cal, int8.predict_batch(cal), bundle.head["error_scale"])
    x = trained.evaluation["x"]
    normal = trained.evaluation["class_index"] == 0
    int8_eval = reconstruction_error(
        x[normal], int8.predict_batch(x[normal]), bundle.head["error_scale"]
    )
    threshold = bundle.head["anomaly_threshold"]  # re-calibrated on the int8 model
    float_threshold = bundle.head.get("float_anomaly_threshold") or threshold

    healthy_s = args.healthy_minutes * 60
    healthy = stream(bundle, FaultSchedule(), seed=10_001, seconds=healthy_s)
    onset = 20.0
    delays = {}
    for i, kind in enumerate(FAULT_KINDS):
        fault = FaultSchedule(kind, onset, SEVERITIES["incipient"], SEVERITIES["incipient"], 1.0)
        events = stream(bundle, fault, seed=20_000 + i, seconds=onset + 30)
        raised = [t for t, state in events if state == "raised"]
        delays[kind] = round(raised[0] - onset, 2) if raised else None

    figures = {
        "preset": args.preset,
        "knobs": dict(knobs),
        "auc_int8": int8_m["auc"],
        "auc_float": float_m["auc"],
        "auc_int8_minus_float": round(int8_m["auc"] - float_m["auc"], 5),
        "auc_smallest_severity_int8": int8_m.get("auc_smallest_severity"),
        "auc_by_severity_int8": int8_m.get("auc_by_severity"),
        "auc_smallest_severity_by_class_int8": int8_m.get("auc_smallest_severity_by_class"),
        "false_alarm_rate_int8": int8_m["false_alarm_rate"],
        "target_false_alarm_rate": int8_m["target_false_alarm_rate"],
        "threshold_int8": round(threshold, 4),
        "threshold_float": round(float_threshold, 4),
        "int8_calibration_far_at_float_threshold": round(
            float((int8_cal > float_threshold).mean()), 5
        ),
        "int8_calibration_far_at_int8_threshold": round(float((int8_cal > threshold).mean()), 5),
        "int8_eval_far_at_threshold": round(float((int8_eval > threshold).mean()), 5),
        "detection_rate_int8": int8_m["detection_rate"],
        "per_class_detection_int8": int8_m["per_class"],
        "baseline_rms_auc": int8_m.get("baseline_rms_auc"),
        "baseline_kmeans_auc": int8_m.get("baseline_kmeans_auc"),
        "tflite_bytes": bundle.sizes["tflite_bytes"],
        "parameters": bundle.sizes["parameters"],
        "sparsity": bundle.sparsity.get("overall"),
        "windows": trained.provenance["windows"],
        "train_seconds": round(train_seconds, 1),
        "healthy_stream_minutes": args.healthy_minutes,
        "healthy_stream_alarms": sum(1 for _, s in healthy if s == "raised"),
        "incipient_alarm_delay_s": delays,
        "incipient_rms_increase_percent": incipient_rms_change(),
        **device_cost(bundle),
        "bundle": str(out),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:44s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
