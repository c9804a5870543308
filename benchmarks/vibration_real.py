"""Vibration anomaly on REAL recordings: the protocol a held-out rig is judged by, in one run.

    .venv/bin/python benchmarks/vibration_real.py --data ../shared/data/bearing_uestc_dev \\
        [--normal-seconds 5] [--rate 12000] [--json]

Per operating condition (``normal/<condition>/`` sub-folder, or files ``<name>_<piece>`` of one
recording, e.g. UESTC ``N_800_1`` … ``N_800_4``), the normal record is cut in time:

* ``--normal-seconds S`` (short-record rigs): the build sees only the first S s of each condition
  (it trains on its first 55 %, calibrates the threshold on the next 20 %, and scores its last
  25 %); the **held-out normal** is everything after those S s. Default: the build sees the whole
  record and the held-out normal is its own last 25 %.
* faults are never trained on; every fault window is scored.
* ``--held-out dev`` / ``test`` (with ``--normal-seconds``): score only the first / second half
  (in time) of the held-out normal of each condition and of each fault record, so that knobs can
  be chosen on ``dev`` and reported once on ``test`` (default ``all``: both halves).

Printed for the int8 model and the baselines (RMS level, kurtosis, K-means on log band energies —
Edge Impulse's anomaly block) on identical windows, each with its threshold from training data
only: AUC (faults vs held-out normal), false-alarm rate on held-out normal, detection per fault
class and per condition, and the bundle's expected FAR with its uncertainty.
``--rate`` resamples every recording first, to imitate a rig with another sensor rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sim.sources.vibration_files import Recording, resample  # noqa: E402

PIECE_SUFFIX = re.compile(r"[_-]\d+$")


def condition_of(recording: Recording) -> str:
    """``normal/N_800`` for ``.../normal/N_800_3.mat``: a trailing ``_<piece>`` is dropped."""
    stem = Path(recording.origin).stem
    return f"{recording.label}/{PIECE_SUFFIX.sub('', stem) or stem}"


def write_folder(folder: Path, groups: dict[str, list[np.ndarray]]) -> None:
    """``folder/<class>/<condition>/<i>.npy`` for each condition's consecutive pieces."""
    for name, pieces in groups.items():
        label, condition = name.split("/", 1)
        target = folder / label / condition
        target.mkdir(parents=True, exist_ok=True)
        for i, samples in enumerate(pieces):
            np.save(target / f"{i:03d}.npy", samples.astype(np.float32))


def half(record: np.ndarray, which: str) -> np.ndarray:
    """The first (``dev``) or second (``test``) half of ``record`` in time, or all of it."""
    middle = len(record) // 2
    return {"dev": record[:middle], "test": record[middle:]}.get(which, record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder: normal/ + fault folders")
    parser.add_argument("--normal-seconds", type=float, help="build on the first S s per condition")
    parser.add_argument("--rate", type=float, help="resample all recordings to this rate (Hz)")
    parser.add_argument("--sample-rate", type=float, help="rate of files that do not state one")
    parser.add_argument("--channel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--held-out",
        choices=("all", "dev", "test"),
        default="all",
        help="score the first (dev) or second (test) half in time of held-out normal and faults",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from quantize.stage import quantize_trained
    from training.stage import TrainOptions
    from training.vibration import evaluate, folder_recordings, train

    recordings = folder_recordings(args.data, sample_rate=args.sample_rate, channel=args.channel)
    if args.rate:
        recordings = [resample(r, args.rate) for r in recordings]
    rate = recordings[0].sample_rate
    groups: dict[str, list[np.ndarray]] = {}
    for recording in recordings:
        groups.setdefault(condition_of(recording), []).append(recording.samples)
    build_groups, held_out = {}, {}
    for name, pieces in groups.items():
        if not name.startswith("normal/") or not args.normal_seconds:
            build_groups[name] = pieces
            continue
        record = np.concatenate(pieces)
        cut = int(args.normal_seconds * rate)
        if cut >= len(record):
            raise SystemExit(f"{name} has only {len(record) / rate:.1f} s of normal data")
        build_groups[name] = [record[:cut]]
        held_out[name] = [half(record[cut:], args.held_out)]

    knobs = tuple(
        (k, json.loads(v) if v[:1].isdigit() or v[:1] in "-[" else v)
        for k, v in (item.split("=", 1) for item in args.set)
    )
    work = Path(tempfile.mkdtemp(prefix="vibration-real-"))
    write_folder(work / "build", build_groups)
    options = TrainOptions(
        data=work / "build", sample_rate=rate, seed=args.seed, hyperparameters=knobs
    )
    started = time.perf_counter()
    trained = train(options)
    trained.save(work / "bundle")
    bundle = quantize_trained(trained, work / "bundle")
    seconds = time.perf_counter() - started
    int8_in_build = bundle.metrics["int8"]
    if held_out:  # later normal + every fault, scored by the bundle as a device would
        faults = {
            k: [half(np.concatenate(v), args.held_out)]
            for k, v in build_groups.items()
            if not k.startswith("normal/")
        }
        write_folder(work / "held_out", {**held_out, **faults})
        held = evaluate(
            bundle,
            work / "held_out",
            TrainOptions(sample_rate=rate, seed=args.seed),
            normal_fractions=(0.0, 0.0, 1.0),
        )
    else:
        held = int8_in_build
    config = bundle.feature_config
    figures = {
        "data": str(args.data),
        "protocol": (
            f"build on the first {args.normal_seconds:g} s of normal per condition; held-out "
            "normal = the rest of each record"
            if args.normal_seconds
            else "time split per condition 55/20/25 %; held-out normal = last 25 %"
        ),
        "held_out": args.held_out if args.normal_seconds else "all",
        "rate_hz": rate,
        "window_samples": config["window_samples"],
        "window_ms": round(1000 * config["window_samples"] / config["sample_rate"], 1),
        "n_features": bundle.input.shape[1],
        "auc_int8": held["auc"],
        "false_alarm_rate_int8": held["false_alarm_rate"],
        "detection_rate_int8": held["detection_rate"],
        "per_class_detection_int8": held["per_class"],
        "per_condition_int8": held.get("per_condition"),
        "expected_false_alarm_rate": bundle.head.get("expected_false_alarm_rate"),
        "false_alarm_rate_upper_95": bundle.head.get("false_alarm_rate_upper_95"),
        "threshold_method": bundle.head.get("method"),
        "auc_float_in_build": bundle.metrics["float"]["auc"],
        "far_float_in_build": bundle.metrics["float"]["false_alarm_rate"],
        "far_int8_in_build": int8_in_build["false_alarm_rate"],
        **{
            f"{k}": held[k]
            for k in sorted(held)
            if k.startswith("baseline_") and not k.endswith("_png")
        },
        "n_normal_held_out": held["n_normal"],
        "n_anomalous": held["n_anomalous"],
        "windows": trained.provenance["windows"],
        "tflite_bytes": bundle.sizes["tflite_bytes"],
        "build_seconds": round(seconds, 1),
        "bundle": str(work / "bundle"),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:36s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
