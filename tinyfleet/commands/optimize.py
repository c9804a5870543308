"""Optimisation and reporting: ``tune`` (search under an MCU budget), ``report`` (HTML page of a
bundle) and ``fleet-view`` (live web page of the fleet, served by mosquitto).

TensorFlow is imported inside ``tune`` only; ``report`` needs matplotlib and the int8 runtime (it
recomputes predictions with the bundle's ``model.tflite``, as a device would).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from device_sim.errors import ConfigError
from device_sim.tasks import task_names
from tinyfleet.commands.task_options import task_option_help
from tinyfleet.output import add_json_flag, emit, render_mapping

log = logging.getLogger(__name__)


def _kilobytes(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 KB, got {text}")
    return value


def _render_tune(result: dict[str, Any]) -> str:
    metric = result.get("metric") or "metric"
    lines = [
        f"study {result['study']}: {result['complete']} complete trials "
        f"({result['trials_this_run']} this run), {result['feasible']} within budget",
        f"Pareto front (int8 {metric} vs flash), {result['pareto_json']}:",
    ]
    for row in result["pareto"]:
        lines.append(
            f"  trial {row['trial']:>3}: {metric} {row[metric]:.4f}  flash {row['flash_bytes']:>7} B"
            f"  arena {row.get('arena_bytes')} B  MACs {row.get('macs')}  "
            + ("preset defaults " if row.get("preset_defaults") else "")
            + str(row["knobs"])
        )
    if result.get("workers", 1) > 1:
        lines.append(f"{result['workers']} workers shared the study")
    for failed in result.get("failed_workers") or []:
        lines.append(f"worker {failed['pid']} failed (exit {failed['status']})")
    best = result.get("best")
    if best:
        lines.append(f"best within budget: trial {best['trial']} → {result['best_bundle']}")
    else:
        lines.append("no trial fits the budget: raise --flash-kb/--arena-kb or narrow the knobs")
    lines.append(f"chart: {result['pareto_png']}")
    return "\n".join(lines)


def run_tune(args: argparse.Namespace) -> int:
    from tinyfleet.commands.stages import _need_training_extra

    _need_training_extra()
    from pipeline.search import Budget, parse_override
    from pipeline.tune import TuneRequest, tune
    from training.stage import TrainOptions

    if args.data is not None and not args.data.exists():
        raise ConfigError(f"--data {args.data} does not exist")
    if args.trials < 0:
        raise ConfigError("--trials must be >= 0 (0 only rewrites the Pareto front)")
    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    budget = Budget(
        flash_bytes=int(args.flash_kb * 1024),
        arena_bytes=int(args.arena_kb * 1024),
        macs=int(args.macs) if args.macs is not None else None,
    )
    request = TuneRequest(
        task=args.task,
        budget=budget,
        trials=args.trials,
        out=args.out or Path("artifacts") / "tune" / args.task,
        options=TrainOptions(
            data=args.data,
            preset=args.preset,
            seed=args.seed,
            teacher=args.teacher,
            sample_rate=args.sample_rate,
            channel=args.channel,
        ),
        storage=args.storage,
        study_name=args.study_name,
        knob_overrides=tuple(parse_override(text) for text in args.knob),
        seed=args.seed,
        workers=args.workers,
    )
    result = tune(request)
    emit(result, args.json, _render_tune)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from pipeline.report import write_report

    out = write_report(args.bundle, args.out)
    emit({"report": str(out), "bytes": out.stat().st_size}, args.json, render_mapping)
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def run_fleet_view(args: argparse.Namespace) -> int:
    import time

    from ops.fleet_view import FleetView

    host, port = args.broker
    with FleetView(host, port, port=args.port) as view:
        emit({"url": view.url, "bridged_from": f"{host}:{port}"}, args.json, render_mapping)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            if not view.broker.is_running():
                raise ConfigError(f"the fleet view's mosquitto stopped; see {view.broker.log_path}")
            time.sleep(0.5)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    tune = subparsers.add_parser(
        "tune",
        help="search model/feature/training knobs for the best int8 model within an MCU budget",
        description="Multi-objective search (Optuna TPE with constraints): every trial trains, "
        "quantizes to int8 and is scored as int8; flash, TFLM arena and MACs are measured. Trials "
        "over budget are infeasible. Writes pareto.json, pareto.png and best/ (the best bundle "
        "within budget). Rerunning continues the study stored in SQLite.",
    )
    tune.add_argument("task", choices=task_names())
    tune.add_argument(
        "--flash-kb", type=_kilobytes, required=True, help="flash budget for the model, KB"
    )
    tune.add_argument(
        "--arena-kb", type=_kilobytes, required=True, help="RAM budget for the TFLM arena, KB"
    )
    tune.add_argument("--macs", type=float, help="optional budget of MACs per inference")
    tune.add_argument("--trials", type=int, required=True, help="trials to add in this run")
    tune.add_argument("--data", type=Path, help="dataset (default: the task's built-in data)")
    tune.add_argument(
        "--sample-rate", type=float, help="recordings' sample rate in Hz when files do not say"
    )
    tune.add_argument("--channel", help=task_option_help("--channel"))
    tune.add_argument("--preset", choices=("quick", "full"), default="quick")
    tune.add_argument("--seed", type=int, default=0, help="training and sampler seed")
    tune.add_argument(
        "--storage",
        help="Optuna storage URL (default sqlite:///OUT/study.db); reuse to resume; "
        "postgresql://USER@HOST/DB lets workers on several machines share the study",
    )
    tune.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes sharing the study (--trials are split between them)",
    )
    tune.add_argument("--study-name", help="default tinyfleet-<task>-<preset>")
    tune.add_argument("--out", type=Path, help="output folder (default artifacts/tune/<task>)")
    tune.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=V[,V…]",
        help="pin a knob (one value) or restrict it to choices (several values)",
    )
    tune.add_argument(
        "--teacher",
        type=Path,
        help="distil every trial from this teacher; also tunes distill_temperature/weight",
    )
    add_json_flag(tune)
    tune.set_defaults(func=run_tune)

    report = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a bundle",
        description="One HTML page (charts embedded as PNG) with data summary, training curves, "
        "float vs int8 metrics, task charts (confusion matrix / ROC / predicted vs reference), "
        "per-layer MACs and params, flash/RAM against common MCUs, explanation and provenance.",
    )
    report.add_argument("--bundle", type=Path, required=True, help="bundle folder")
    report.add_argument("--out", type=Path, help="HTML file (default BUNDLE/report.html)")
    add_json_flag(report)
    report.set_defaults(func=run_report)

    view = subparsers.add_parser(
        "fleet-view",
        help="serve a live web page of the fleet (devices, last predictions, alarms)",
        description="Starts a small mosquitto on 127.0.0.1 that bridges tinyfleet/# in from the "
        "fleet broker and serves the page plus MQTT-over-WebSockets on one port. Open the printed "
        "URL in a browser; Ctrl-C stops it.",
    )
    view.add_argument(
        "--broker",
        type=_host_port,
        default=("127.0.0.1", 1883),
        metavar="HOST:PORT",
        help="the fleet's MQTT broker (default 127.0.0.1:1883)",
    )
    view.add_argument("--port", type=int, help="HTTP/websockets port (default: a free one)")
    view.add_argument(
        "--seconds", type=float, help="stop after this long (default: run until Ctrl-C)"
    )
    add_json_flag(view)
    view.set_defaults(func=run_fleet_view)
