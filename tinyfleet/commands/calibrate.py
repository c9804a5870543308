"""``tinyfleet calibrate``: re-fit an air-quality bundle's per-target correction from reference hours.

Reads a bundle and a CSV of co-located hours (the node's sensor columns plus reference
concentrations, UCI or generic format with ``--column``), fits ``head.correction`` (see
:mod:`device_sim.tasks.air_quality_calibration`) and writes a new bundle version, ready for
``tinyfleet rollout``. Needs no TensorFlow.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from device_sim.bundle import load_bundle
from device_sim.errors import ConfigError
from tinyfleet.output import add_json_flag, emit, render_mapping


def run_calibrate(args: argparse.Namespace) -> int:
    from device_sim.sources.uci_air_csv import load_csv
    from device_sim.tasks.air_quality_calibration import calibrate_bundle
    from tinyfleet.commands.stages import _column_map

    bundle = load_bundle(args.bundle)
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data} does not exist: pass a CSV of reference hours")
    out = args.out or args.bundle.with_name(args.bundle.name + "-calibrated")
    if out.resolve() == args.bundle.resolve():
        raise ConfigError("--out must differ from --bundle: the uncalibrated bundle is kept")
    column_map = _column_map(args.column) or tuple(map(tuple, bundle.extra.get("column_map", ())))
    table = load_csv(args.data, column_map)
    calibrated = calibrate_bundle(bundle, table, out, prior_hours=args.prior_hours)
    correction = calibrated.head["correction"]
    result: dict[str, Any] = {
        "bundle": str(out),
        "version": calibrated.version,
        "calibrated_from": bundle.version,
        "targets": {
            t["key"]: {
                "gain": round(gain, 4),
                "bias": round(bias, 4),
                "reference_hours": hours,
                "mae_before": before,
                "mae_after": after,
                "unit": t["unit"],
            }
            for t, gain, bias, hours, before, after in zip(
                calibrated.head["targets"],
                correction["gain"],
                correction["bias"],
                correction["reference_hours"],
                correction["mae_before"],
                correction["mae_after"],
                strict=True,
            )
        },
        "note": correction["note"],
    }
    emit(result, args.json, render_mapping)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="air quality: correct a deployed bundle for sensor drift from reference hours",
        description="Fit a per-target affine correction (in log concentration) of an air_quality "
        "bundle from a CSV of hours where the node ran beside reference analysers, and write a "
        "new bundle version (same int8 model) that `tinyfleet rollout` can deliver. A few days of "
        "reference hours are enough; fewer hours move the correction less.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="the deployed bundle folder")
    parser.add_argument("--data", type=Path, required=True, help="CSV of co-located hours")
    parser.add_argument("--out", type=Path, help="new bundle folder (default: BUNDLE-calibrated)")
    parser.add_argument("--column", action="append", default=[], metavar="SOURCE=CANONICAL")
    parser.add_argument(
        "--prior-hours",
        type=float,
        default=24.0,
        help="shrinkage towards no correction, in pseudo-hours (default 24)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run_calibrate)
