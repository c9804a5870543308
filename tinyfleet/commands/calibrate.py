"""``tinyfleet calibrate``: re-fit an air-quality bundle's per-target correction from reference hours.

Reads a bundle and a CSV of co-located hours (the node's sensor columns plus reference
concentrations, UCI or generic format with ``--column``), fits ``head.correction`` (see
:mod:`device_sim.tasks.air_quality.calibration`, the task spec's ``calibrate``) and writes a new bundle version, ready for
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
    from device_sim.tasks import spec_for, task_names
    from tinyfleet.commands.stages import _column_map

    bundle = load_bundle(args.bundle)
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data} does not exist: pass a CSV of reference hours")
    out = args.out or args.bundle.with_name(args.bundle.name + "-calibrated")
    if out.resolve() == args.bundle.resolve():
        raise ConfigError("--out must differ from --bundle: the uncalibrated bundle is kept")
    column_map = _column_map(args.column) or tuple(map(tuple, bundle.extra.get("column_map", ())))
    calibrate = spec_for(bundle.task).calibrate
    if calibrate is None:
        able = ", ".join(t for t in task_names() if spec_for(t).calibrate is not None)
        raise ConfigError(f"{bundle.directory} is a {bundle.task} bundle; calibrate {able}")
    calibrated, report = calibrate(bundle, args.data, out, column_map, args.prior_hours)
    result: dict[str, Any] = {
        "bundle": str(out),
        "version": calibrated.version,
        "calibrated_from": bundle.version,
        **report,
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
