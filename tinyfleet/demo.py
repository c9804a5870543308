"""`tinyfleet demo`: the whole walk for every task, on the quick preset, ending in one summary table.

train → prune → int8 → bundle → firmware files → HTML report, then a local mosquitto, a few simulated
devices streaming for ~20 s and a live subscriber; the table gives per model flash/arena bytes and
float vs int8 metric, and for the fleet messages published/received/lost and median/p99 latency.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_sim import console
from device_sim.bundle import Bundle
from device_sim.tasks import spec_for, task_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    out: Path = Path("artifacts")
    tasks: Sequence[str] = field(default_factory=task_names)
    devices: int = 3
    duration_s: float = 20.0
    # Windows per second per model per device. Real time would give air quality one window per
    # hour, i.e. nothing in a 20 s demo; 2 Hz is near KWS's and vibration's real pace.
    rate_hz: float = 2.0
    seed: int = 0
    reuse: bool = False  # keep bundles already in OUT/<task> instead of rebuilding


def headline(task: str, metrics: dict[str, Any]) -> tuple[str, Any]:
    """The one figure a person compares between float and int8 (the task spec's ``figure``)."""
    if task in task_names():
        name, value = spec_for(task).figure(metrics)
        if value is not None:
            return name, value
    key = next(iter(metrics), "metric")
    return key, metrics.get(key)


def build_bundles(options: DemoOptions) -> tuple[list[Bundle], dict[str, float]]:
    from device_sim.bundle import load_bundle
    from pipeline.build import build
    from training.stage import TrainOptions

    bundles, seconds = [], {}
    for number, task in enumerate(options.tasks, 1):
        out = options.out / task
        started = time.perf_counter()
        if options.reuse and (out / "bundle.json").is_file():
            bundle = load_bundle(out)
            console.say(f"[{number}/{len(options.tasks)}] {task}: reusing {out}")
        else:
            console.say(
                f"[{number}/{len(options.tasks)}] {task}: train → prune → int8 → firmware "
                f"({_data_story(task)})"
            )
            bundle = build(task, TrainOptions(preset="quick", seed=options.seed), out)
        seconds[task] = round(time.perf_counter() - started, 1)
        console.say(f"      {model_line(bundle)} ({seconds[task]:.0f} s)")
        bundles.append(bundle)
    return bundles, seconds


def _data_story(task: str) -> str:
    """What the quick preset trains on when no --data is given (told, so nobody mistakes it for
    real data): the task spec's ``demo_source``."""
    return spec_for(task).demo_source if task in task_names() else "built-in data"


def model_line(bundle: Bundle) -> str:
    """``14,552 B flash, 12,064 B arena, accuracy 0.633 float → 0.614 int8`` for one bundle."""
    name, float_value = headline(bundle.task, bundle.metrics.get("float", {}))
    _, int8_value = headline(bundle.task, bundle.metrics.get("int8", {}))
    parts = [f"{bundle.task}:"]
    for key, what in (("tflite_bytes", "flash"), ("arena_bytes", "arena")):
        if bundle.sizes.get(key) is not None:
            parts.append(f"{int(bundle.sizes[key]):,} B {what},")

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    parts.append(f"{name} {fmt(float_value)} float → {fmt(int8_value)} int8")
    return " ".join(parts)


def write_reports(bundles: Sequence[Bundle]) -> dict[str, str]:
    from pipeline.report import write_report

    return {bundle.task: str(write_report(bundle.directory)) for bundle in bundles}


def run_fleet_with_subscriber(bundles: Sequence[Bundle], options: DemoOptions) -> dict[str, Any]:
    """A real mosquitto on a free loopback port, the devices, and a subscriber counting arrivals."""
    from device_sim.fleet import FleetOptions, run_fleet
    from ops.broker import start_broker
    from ops.subscriber import Subscriber

    state = options.out / "demo-state"
    broker = start_broker(state / "broker")
    try:
        subscriber = Subscriber(broker.url, keep_latencies=True).start()
        subscriber.wait_connected()
        console.say(
            f"fleet: {options.devices} simulated devices × {len(bundles)} models → mosquitto "
            f"{broker.url} → a subscriber, for {options.duration_s:.0f} s"
        )
        with console.ticking(
            options.duration_s, "streaming", status=lambda: f"{subscriber.unique} received"
        ):
            fleet = run_fleet(
                FleetOptions(
                    broker_url=broker.url,
                    bundles=list(bundles),
                    devices=options.devices,
                    duration_s=options.duration_s,
                    rate_hz=options.rate_hz,
                    prediction_qos=1,
                    state_dir=state / "devices",
                    seed=options.seed,
                )
            )
        published = fleet["published"]["predictions"]
        deadline = time.monotonic() + 10
        while subscriber.unique < published and time.monotonic() < deadline:
            time.sleep(0.1)
        subscriber.close()
        latencies = sorted(subscriber.all_latencies_ms or [])
        return {
            "broker": broker.url,
            "devices": options.devices,
            "seconds": fleet["seconds"],
            "published": published,
            "received": subscriber.unique,
            "duplicates": subscriber.duplicates,
            "lost": published - subscriber.unique,
            "latency_ms_median": round(statistics.median(latencies), 2) if latencies else None,
            "latency_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))], 2)
            if latencies
            else None,
            "per_task": {
                task: {
                    "windows": figures["windows"],
                    "events": figures["events"],
                    "median_ms": figures["median_ms"],
                }
                for task, figures in fleet["per_task"].items()
            },
        }
    finally:
        broker.stop()


def model_rows(bundles: Sequence[Bundle], build_seconds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for bundle in bundles:
        name, float_value = headline(bundle.task, bundle.metrics.get("float", {}))
        _, int8_value = headline(bundle.task, bundle.metrics.get("int8", {}))
        rows.append(
            {
                "task": bundle.task,
                "bundle": str(bundle.directory),
                "flash_bytes": bundle.sizes.get("tflite_bytes"),
                "arena_bytes": bundle.sizes.get("arena_bytes"),
                "macs": bundle.sizes.get("macs"),
                "metric": name,
                "float": float_value,
                "int8": int8_value,
                "build_seconds": build_seconds.get(bundle.task),
            }
        )
    return rows


def run_demo(options: DemoOptions) -> dict[str, Any]:
    started = time.perf_counter()
    console.say(
        f"tinyfleet demo: {', '.join(options.tasks)} on the quick preset, then a simulated fleet"
    )
    bundles, build_seconds = build_bundles(options)
    console.say("writing one HTML report per model")
    reports = write_reports(bundles)
    fleet = run_fleet_with_subscriber(bundles, options)
    return {
        "models": model_rows(bundles, build_seconds),
        "fleet": fleet,
        "reports": reports,
        "firmware": {b.task: str(b.directory / "firmware") for b in bundles},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _fmt(value: Any, width: int) -> str:
    if value is None:
        text = "—"
    elif isinstance(value, float):
        text = f"{value:.3f}"
    else:
        text = str(value)
    return text.rjust(width)


def render_summary(result: dict[str, Any]) -> str:
    lines = ["", "tinyfleet demo — summary", ""]
    header = f"{'model':<12}{'flash B':>9}{'arena B':>9}{'MACs':>10}  {'metric':<20}{'float':>18}{'int8':>18}"
    lines += [header, "-" * len(header)]
    for row in result["models"]:
        lines.append(
            f"{row['task']:<12}{_fmt(row['flash_bytes'], 9)}{_fmt(row['arena_bytes'], 9)}"
            f"{_fmt(row['macs'], 10)}  {row['metric']:<20}{_fmt(row['float'], 18)}"
            f"{_fmt(row['int8'], 18)}"
        )
    fleet = result["fleet"]
    lines += [
        "",
        f"fleet: {fleet['devices']} devices × {len(fleet['per_task'])} models for "
        f"{fleet['seconds']:.0f} s on {fleet['broker']}",
        f"messages: published {fleet['published']}, received {fleet['received']}, "
        f"lost {fleet['lost']}, duplicates {fleet['duplicates']}",
        f"latency window end → subscriber: median {fleet['latency_ms_median']} ms, "
        f"p99 {fleet['latency_ms_p99']} ms",
        "",
    ]
    for task, path in result["reports"].items():
        lines.append(f"report {task}: {path}")
    for task, path in result["firmware"].items():
        lines.append(f"firmware {task}: {path}")
    lines.append(f"total {result['seconds']:.0f} s")
    return "\n".join(lines)
