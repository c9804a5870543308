"""``tinyfleet demo``: every task through every stage, a simulated fleet, one summary table."""

from __future__ import annotations

import argparse
from pathlib import Path

from device_sim.errors import ConfigError
from device_sim.tasks import task_names
from tinyfleet.output import add_json_flag, emit


def run(args: argparse.Namespace) -> int:
    from tinyfleet.commands.stages import _need_training_extra
    from tinyfleet.demo import DemoOptions, render_summary, run_demo

    _need_training_extra()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(task_names()))
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; choose from {', '.join(task_names())}")
    result = run_demo(
        DemoOptions(
            out=args.out,
            tasks=tasks,
            devices=args.devices,
            duration_s=args.duration,
            seed=args.seed,
            reuse=args.reuse,
        )
    )
    emit(result, args.json, render_summary)
    return 0 if result["fleet"]["lost"] == 0 else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build every micromodel (quick preset) and run a simulated fleet over MQTT",
        description="The whole walk: for each task train → prune → int8 → bundle → firmware "
        "files → HTML report; then a local mosquitto, simulated devices streaming for "
        "--duration seconds and a live subscriber. Ends with a summary table (flash, arena, "
        "float vs int8 metric, messages published/received/lost, latency).",
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifacts folder")
    parser.add_argument("--tasks", default=",".join(task_names()), help="comma-separated tasks")
    parser.add_argument("--devices", type=int, default=3, help="simulated devices (default 3)")
    parser.add_argument("--duration", type=float, default=20.0, help="fleet run in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse", action="store_true", help="reuse bundles already in OUT/<task> (skip training)"
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)
