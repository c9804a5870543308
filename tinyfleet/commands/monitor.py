"""``tinyfleet monitor``: watch deployed models for drift and silence; publish health events.

Needs no TensorFlow: it reads predictions like ``subscribe`` and, once per bundle without a recorded
reference, scores the bundle's held-out windows with its int8 model (ops.monitor).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from device_sim.bundle import load_bundle
from device_sim.errors import ConfigError
from tinyfleet.commands.fleet import _add_connection_options, _credentials
from tinyfleet.output import add_json_flag

log = logging.getLogger(__name__)


def reference_for(bundle_dir: Path) -> tuple[str, dict[str, Any]]:
    """(task, reference statistics) recorded in the bundle, computed and recorded if missing.

    Bundles built since the quantize stage records them carry them; an older bundle gets them
    here, from the ``evaluation.npz`` beside it, and keeps them.
    """
    from device_sim.monitoring import MONITORING_KEY, record_reference
    from device_sim.tasks import spec_for, task_names

    bundle = load_bundle(bundle_dir)
    recorded = (bundle.extra or {}).get(MONITORING_KEY)
    if recorded:
        return bundle.task, recorded
    if spec_for(bundle.task).drift is None:
        watched = ", ".join(t for t in task_names() if spec_for(t).drift is not None)
        raise ConfigError(
            f"{bundle_dir}: drift statistics exist for {watched} bundles only "
            f"(this is {bundle.task}); silence and invalid windows are watched for every task"
        )
    log.info("%s records no monitoring reference: computing it from evaluation.npz", bundle_dir)
    bundle = record_reference(bundle)  # the bundle records it from now on
    return bundle.task, bundle.extra[MONITORING_KEY]


class HealthPublisher:
    """Runs a :class:`HealthMonitor` inside a subscriber and publishes its events (also used by
    ``tinyfleet subscribe --monitor BUNDLE``)."""

    def __init__(self, bundle_dirs, window: int | None, silence_s: float, as_json: bool) -> None:
        from ops.monitor import HealthMonitor

        references = dict(reference_for(path) for path in bundle_dirs or [])
        self.monitor = HealthMonitor(references, window=window, silence_s=silence_s)
        self.as_json = as_json
        self.events: list[dict[str, Any]] = []
        self.subscriber: Any = None

    def publish(self, event) -> None:
        from device_sim.mqtt import topics

        payload = event.payload()
        self.events.append(payload)
        self.subscriber.connection.publish(
            topics.task_health_topic(event.device, event.task),
            json.dumps(payload).encode(),
            1,
            True,
        )
        if self.as_json:
            sys.stdout.write(json.dumps({"health": payload}) + "\n")
        else:
            reasons = f" — {'; '.join(event.reasons)}" if event.reasons else ""
            log.warning("%s/%s: %s%s", event.device, event.task, event.status, reasons)
        sys.stdout.flush()

    def on_prediction(self, prediction, payload: bytes, received_ms: int) -> None:
        event = self.monitor.observe(prediction)
        if event is not None:
            self.publish(event)

    def tick(self) -> None:
        for event in self.monitor.check_silence():
            self.publish(event)


def run_monitor(args: argparse.Namespace) -> int:
    from ops.subscriber import Subscriber

    health = HealthPublisher(args.bundle, args.window, args.silence, args.json)
    subscriber = Subscriber(
        args.broker, credentials=_credentials(args), on_prediction=health.on_prediction
    )
    health.subscriber = subscriber
    monitor, events = health.monitor, health.events

    started = time.monotonic()
    try:
        subscriber.run(args.duration, tick=health.tick, tick_interval_s=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "predictions": subscriber.unique,
        "events": len(events),
        "status": {f"{d}/{t}": track.status for (d, t), track in monitor.tracks.items()},
    }
    sys.stdout.write((json.dumps({"summary": summary}) if args.json else str(summary)) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from device_sim.tasks import spec_for, task_names

    drift_tasks = [t for t in task_names() if spec_for(t).drift is not None]
    monitor = subparsers.add_parser(
        "monitor",
        help="watch deployed models for drift and silence; publish health events",
        description="Compares the predictions devices publish with the reference statistics the "
        "bundle recorded on its held-out set ("
        + "; ".join(f"{t}: {spec_for(t).drift.description}" for t in drift_tasks)
        + "), the share of invalid windows and silence, and publishes each change of status "
        "retained on tinyfleet/<device>/<task>/health (shown by fleet-view).",
    )
    _add_connection_options(monitor)
    monitor.add_argument(
        "--bundle", type=Path, action="append", help="bundle whose reference to use (repeatable)"
    )
    monitor.add_argument(
        "--window",
        type=int,
        help="a device's latest predictions compared (default: what the task declares — "
        + ", ".join(f"{t} {spec_for(t).drift.window}" for t in drift_tasks)
        + ")",
    )
    monitor.add_argument(
        "--silence", type=float, default=60.0, help="seconds without a prediction = silent"
    )
    monitor.add_argument("--duration", type=float, help="stop after this many seconds")
    add_json_flag(monitor)
    monitor.set_defaults(func=run_monitor)
