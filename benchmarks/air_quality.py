"""Air-quality soft sensor on real data: the forward-chaining dev protocol, then the final bundle.

Protocol (training/air_quality/protocol.py): on the UCI dev file, for each month from the fourth on,
train on every earlier month and score that month — float model, int8 bundle, the float curve prior
alone, and six scikit-learn baselines (linear, gradient boosting, hist gradient boosting; the hour's
own readings and lagged readings + hour of day) on identical rows. Per target: mean MAE over the
months and the worst month; the bar is the best baseline by mean. Then one build on the whole file
gives flash (flatbuffer + float prior constants), TFLM arena and MACs, and ``--recovery`` measures
how many days of reference data ``tinyfleet calibrate`` needs to restore a drifted late month.

    nice .venv/bin/python benchmarks/air_quality.py [--data FILE.csv] [--preset quick|full]
        [--seed 0] [--knob NAME=JSON ...] [--no-final] [--no-forward] [--recovery] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEV_FILE = Path(__file__).resolve().parents[2] / "shared/data/air_quality_uci_dev"
DEFAULT_DATA = DEV_FILE / "AirQualityUCI_2004-03_to_2004-10.csv"
CACHE = Path("/work/cache/i14") if Path("/work/cache").is_dir() else None


def _knobs(pairs: list[str]) -> tuple[tuple[str, object], ...]:
    out = []
    for pair in pairs:
        name, _, value = pair.partition("=")
        out.append((name, json.loads(value)))
    return tuple(out)


def forward_chaining(options, table, cache: Path | None, months: set[str] | None = None) -> dict:
    """Every fold (or those scoring ``months``): train → int8 bundle → per-target MAEs on
    identical rows."""
    from quantize.stage import quantize_trained
    from training.air_quality import train
    from training.air_quality.protocol import month_folds

    folds = []
    for fold in month_folds(table):
        if months and fold.label not in months:
            continue
        started = time.perf_counter()
        trained = train(
            options,
            table=table,
            split_rows=(fold.train_end, fold.test_end),
            baseline_cache=cache,
        )
        with tempfile.TemporaryDirectory() as tmp:
            bundle = quantize_trained(trained, Path(tmp) / "bundle")
        seconds = time.perf_counter() - started
        targets = {}
        for name, entry in bundle.metrics["int8"]["targets"].items():
            targets[name] = {
                "int8": entry["mae"],
                "float": bundle.metrics["float"]["targets"][name]["mae"],
                "prior_only": entry.get("prior_only_mae"),
                "n": entry["n_test"],
                **entry["baselines_mae"],
            }
        folds.append({"month": fold.label, "seconds": round(seconds, 1), "targets": targets})
        logging.getLogger("benchmark").warning(
            "%s: %s (%.0f s)",
            fold.label,
            {k: round(v["int8"], 4) for k, v in targets.items()},
            seconds,
        )
    return {"folds": folds, "summary": summarize(folds)}


def summarize(folds: list[dict]) -> dict:
    """Per target and method: mean over months and worst month; the best baseline by mean."""
    from training.air_quality.protocol import summarize as mean_worst

    summary = {}
    for target in folds[0]["targets"]:
        methods = [k for k in folds[0]["targets"][target] if k != "n"]
        table = {
            m: mean_worst([f["targets"][target].get(m) for f in folds])
            for m in methods
            if folds[0]["targets"][target].get(m) is not None
        }
        baselines = [m for m in table if m not in ("int8", "float", "prior_only")]
        best = min(baselines, key=lambda m: table[m]["mean"])
        summary[target] = {
            "methods": table,
            "best_baseline": best,
            "int8_over_best_mean": table["int8"]["mean"] / table[best]["mean"],
            "int8_over_best_worst": table["int8"]["worst"] / table[best]["worst"],
            "beats_best_baseline": table["int8"]["mean"] < table[best]["mean"],
        }
    return summary


def final_build(options, out: Path) -> dict:
    """Train on the whole file (no held-out part is scored) and measure the deployable bundle."""
    from pipeline.build import build

    hyper = dict(options.hyperparameters)
    bundle = build("air_quality", options, out, export=True)
    prior = bundle.head.get("prior")
    from device_sim.tasks.air_quality import CurvePrior

    prior_bytes = 4 * CurvePrior.from_dict(prior).n_values if prior else 0
    return {
        "tflite_bytes": bundle.sizes.get("tflite_bytes"),
        "prior_float_bytes": prior_bytes,
        "flash_bytes": (bundle.sizes.get("tflite_bytes") or 0) + prior_bytes,
        "arena_bytes": bundle.sizes.get("arena_bytes"),
        "parameters": bundle.sizes.get("parameters"),
        "macs": bundle.sizes.get("macs"),
        "hyperparameters": hyper,
        "sizes": bundle.sizes,
    }


RECOVERY_DAYS = (0, 1, 2, 3, 5, 7)
# A MOX drift applied to the later month's sensors for the "drifted" curve: ageing sensors lose or
# gain sensitivity by 10-20 % over a season (the dev months alone drift too little to need it).
DRIFT = {"PT08.S1(CO)": 0.85, "PT08.S2(NMHC)": 1.12, "PT08.S3(NOx)": 1.15, "PT08.S4(NO2)": 0.9}


def recovery_curve(options, table, cache: Path | None) -> dict:
    """Train on the months before the second-to-last, skip one month, then calibrate on the first
    ``d`` days of the last month and score its days 8 onward (identical rows for every ``d``)."""
    from device_sim.tasks.air_quality.calibration import run_model
    from quantize.stage import quantize_trained
    from training.air_quality import train
    from training.air_quality.protocol import month_folds

    folds = month_folds(table)
    gap, later = folds[-2], folds[-1]
    trained = train(
        options, table=table, split_rows=(gap.train_end, gap.test_end), baseline_cache=cache
    )
    drifted = copy.deepcopy(table)
    for name, factor in DRIFT.items():
        column = drifted.columns.index(name)
        drifted.values[later.train_end :, column] *= factor
    with tempfile.TemporaryDirectory() as tmp:
        bundle = quantize_trained(trained, Path(tmp) / "bundle")
        runs = {"real": run_model(bundle, table), "drifted": run_model(bundle, drifted)}
    return {
        "trained_before": gap.label,
        "later_month": later.label,
        "drift_factors": DRIFT,
        **{name: _curve(run, later, bundle) for name, run in runs.items()},
    }


def _curve(run, later, bundle) -> dict:
    from device_sim.tasks.air_quality.calibration import fit_field_calibration, mae_with

    in_later = (run.end_row >= later.train_end) & (run.end_row < later.test_end)
    day = (run.end_row - later.train_end) // 24
    scored = np.flatnonzero(in_later & (day >= max(RECOVERY_DAYS)))
    curve = []
    for days in RECOVERY_DAYS:
        reference_rows = np.flatnonzero(in_later & (day < days))
        offsets, correction, shifted = (
            fit_field_calibration(run, reference_rows) if days else ({}, None, run)
        )
        mae = mae_with(shifted, correction, scored)
        curve.append(
            {
                "reference_days": days,
                "reference_hours": correction["reference_hours"] if correction else [0, 0, 0],
                "applied": correction["applied"] if correction else [False] * 3,
                "sensor_offsets_ln": offsets,
                "mae": dict(zip([t["name"] for t in bundle.head["targets"]], mae, strict=True)),
            }
        )
    return {"scored_hours": int(len(scored)), "curve": curve}


def render(result: dict) -> str:
    lines = [f"== forward chaining on {result['data']} (preset {result['preset']})"]
    forward = result.get("forward", {"folds": [], "summary": {}})
    months = [f["month"] for f in forward["folds"]]
    lines.append(f"   scored months: {', '.join(months)} (each trained on all earlier months)")
    for target, entry in forward["summary"].items():
        lines.append(
            f"   {target}: best baseline {entry['best_baseline']}; int8/best mean "
            f"{entry['int8_over_best_mean']:.3f}, worst-month ratio "
            f"{entry['int8_over_best_worst']:.3f}"
        )
        for method, values in sorted(entry["methods"].items(), key=lambda kv: kv[1]["mean"]):
            lines.append(
                f"      {method:16s} mean {values['mean']:8.4g}  worst {values['worst']:8.4g}"
            )
    if "recovery" in result:
        r = result["recovery"]
        for kind in ("real", "drifted"):
            lines.append(
                f"== calibrate recovery ({kind}): trained before {r['trained_before']} (skipped), "
                f"scored {r['later_month']} days 8+ ({r[kind]['scored_hours']} h)"
            )
            for point in r[kind]["curve"]:
                maes = ", ".join(f"{k} {v:.4g}" for k, v in point["mae"].items())
                lines.append(f"      {point['reference_days']} reference days: {maes}")
    if "final" in result:
        f = result["final"]
        lines.append(
            f"== whole file: flatbuffer {f['tflite_bytes']} B + float prior "
            f"{f['prior_float_bytes']} B = {f['flash_bytes']} B flash, arena {f['arena_bytes']} B"
            f", {f['parameters']} parameters, MACs {f['macs']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--preset", choices=("quick", "full"), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=JSON")
    parser.add_argument("--no-final", action="store_true", help="skip the whole-file build")
    parser.add_argument("--recovery", action="store_true", help="measure calibrate's recovery")
    parser.add_argument("--no-forward", action="store_true", help="skip the forward chaining")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--months", help="score only these folds, e.g. 2004-06,2004-07")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.data.is_file():
        parser.error(f"{args.data} not found: pass the UCI dev file with --data")

    from device_sim.sources.uci_air_csv import load_csv
    from training.stage import TrainOptions

    options = TrainOptions(
        data=args.data, preset=args.preset, seed=args.seed, hyperparameters=_knobs(args.knob)
    )
    table = load_csv(args.data)
    result = {
        "data": str(args.data),
        "preset": args.preset,
        "knobs": dict(options.hyperparameters),
    }
    if not args.no_forward:
        months = set(args.months.split(",")) if args.months else None
        result["forward"] = forward_chaining(options, table, CACHE, months)
    if args.recovery:
        result["recovery"] = recovery_curve(options, table, CACHE)
    if not args.no_final:
        with tempfile.TemporaryDirectory() as tmp:
            result["final"] = final_build(options, Path(tmp) / "bundle")
    print(json.dumps(result, default=float) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
