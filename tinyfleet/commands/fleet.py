"""Fleet commands: ``broker``, ``simulate``, ``device`` and ``subscribe``.

Topics and payloads are documented in ``docs/mqtt.md``. Everything here talks to brokers by URL
(``mqtt://HOST:PORT``, ``mqtts://`` for TLS); ``tinyfleet broker`` prints the URL of a local one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from device_sim.bundle import load_bundle
from device_sim.errors import ConfigError
from device_sim.tasks import task_names
from tinyfleet.commands.task_options import task_option_help, tasks_with
from tinyfleet.output import add_json_flag, emit, render_mapping

log = logging.getLogger(__name__)

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_STATE_DIR = Path(".tinyfleet-state")
PASSWORD_ENV = "TINYFLEET_MQTT_PASSWORD"
# What must not reach a terminal from a message: C0/C1 controls (escape sequences, bell), DEL,
# bidi overrides/isolates (text that displays reversed) and lone surrogates (unprintable).
_UNSAFE_FOR_TERMINAL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=DEFAULT_BROKER,
        help=f"broker URL, mqtt://HOST:PORT or mqtts://HOST:PORT (default {DEFAULT_BROKER})",
    )
    parser.add_argument(
        "--username", help="MQTT user name ('{device}' is replaced by each device id)"
    )
    parser.add_argument(
        "--password",
        help="MQTT password ('{device}' is replaced likewise); visible to other users in `ps`: "
        f"prefer --password-file or ${PASSWORD_ENV}",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        help=f"read the MQTT password from this file (first line; default: ${PASSWORD_ENV})",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (implied by mqtts:// or --ca)")
    parser.add_argument("--ca", type=Path, help="CA certificate that signed the broker's")


def mqtt_password(args: argparse.Namespace) -> str | None:
    """The MQTT password from --password, else --password-file, else $TINYFLEET_MQTT_PASSWORD.

    A password on the command line is readable by every local user (/proc/PID/cmdline), so every
    command that connects also takes it from a file or the environment.
    """
    if args.password is not None:
        log.warning(
            "--password is visible to other local users; use --password-file or $%s", PASSWORD_ENV
        )
        return args.password
    if args.password_file is not None:
        try:
            lines = Path(args.password_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --password-file {args.password_file}: {exc}") from exc
        if not lines or not lines[0]:
            raise ConfigError(f"--password-file {args.password_file} is empty")
        if Path(args.password_file).stat().st_mode & 0o077:
            log.warning("%s is readable by other users: chmod 600 it", args.password_file)
        return lines[0]
    return os.environ.get(PASSWORD_ENV) or None


def _credentials(args: argparse.Namespace):
    from device_sim.mqtt.client import Credentials

    return Credentials(args.username, mqtt_password(args), args.ca, args.tls).check()


def terminal_safe(value: Any) -> str:
    """``str(value)`` with control characters shown as escapes (``\\x1b``), never sent raw."""
    text = str(value)
    if _UNSAFE_FOR_TERMINAL.search(text) is None:
        return text
    return _UNSAFE_FOR_TERMINAL.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text
    )


def _device_passwords(args: argparse.Namespace) -> dict[str, str] | None:
    """``--credentials FILE``: each device logs in as its id with its own password."""
    if getattr(args, "credentials", None) is None:
        return None
    from device_sim.mqtt.credentials import load_passwords

    if args.username or args.password:
        raise ConfigError(
            "--credentials gives each device its own login: drop --username/--password"
        )
    return load_passwords(args.credentials)


# -- broker -------------------------------------------------------------------------------------
def run_broker(args: argparse.Namespace) -> int:
    from ops.broker import MosquittoBroker, mosquitto_binary, start_broker

    state_dir = args.state_dir.resolve()
    extra: list[str] = []
    if args.secure:
        from ops.security import secure_broker_config

        extra = secure_broker_config(state_dir)
    if mosquitto_binary():
        broker = MosquittoBroker(
            state_dir,
            args.port,
            args.persistence,
            extra,
            websockets_port=args.websockets,
        ).start()
    else:
        broker = start_broker(state_dir, args.port, args.persistence, extra)
    scheme = "mqtts" if args.secure else "mqtt"
    result: dict[str, Any] = {
        "url": f"{scheme}://{broker.host}:{broker.port}",
        "state_dir": str(state_dir),
        "persistence": args.persistence,
        "secure": args.secure,
        "pid": getattr(broker, "pid", None),
    }
    if args.websockets:
        result["websockets_url"] = f"ws://{broker.host}:{args.websockets}"
    emit(result, args.json, lambda r: f"broker listening on {r['url']} (Ctrl-C stops it)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if hasattr(broker, "is_running") and not broker.is_running():
                log.error("the broker exited; its log is in %s", state_dir)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


# -- simulate / device ---------------------------------------------------------------------------
def _bundles(args: argparse.Namespace) -> list:
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    for task in tasks or []:
        if task not in task_names():
            raise ConfigError(
                f"unknown task {task!r} in --tasks; choose from {', '.join(task_names())}"
            )
    if args.bundles:
        bundles = [load_bundle(path) for path in args.bundles]
        if tasks:
            bundles = [b for b in bundles if b.task in tasks]
    else:
        root = args.artifacts
        wanted = tasks or [t for t in task_names() if (root / t / "bundle.json").is_file()]
        if not wanted:
            raise ConfigError(
                f"no bundles in {root}/<task>/: build one first (`tinyfleet build vibration "
                f"--out {root}/vibration`) or pass --bundles DIR..."
            )
        bundles = [load_bundle(root / task) for task in wanted]
    if not bundles:
        raise ConfigError("none of the --bundles matches --tasks")
    return bundles


def _render_fleet(result: dict[str, Any]) -> str:
    lines = [
        f"{result['devices']} device(s) × {', '.join(result['tasks'])} for "
        f"{result['seconds']:.1f} s ({result['mode']}) → {result['broker']}",
        f"windows: {result['windows']} ({result['inferences_per_s']} inferences/s)",
    ]
    lines.append(render_mapping({"published": result["published"]}))
    for task, figures in result["per_task"].items():
        median = figures["median_ms"]
        lines.append(
            f"{task}: {figures['windows']} windows, {figures['invalid_windows']} invalid, "
            f"{figures['events']} events; median ms: features {median['features']}, "
            f"invoke {median['invoke']}, total {median['total']}"
        )
    return "\n".join(lines)


def _task_rates(items: list[str] | None) -> dict[str, float]:
    """``["vibration=1", "air_quality=0.5"]`` → ``{"vibration": 1.0, "air_quality": 0.5}``."""
    rates: dict[str, float] = {}
    for item in items or []:
        task, _, value = item.partition("=")
        try:
            rates[task.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"--task-rate {item!r}: use TASK=HZ, e.g. --task-rate vibration=1"
            ) from None
        if task.strip() not in task_names():
            raise ConfigError(
                f"--task-rate {item!r}: unknown task; choose from {', '.join(task_names())}"
            )
    return rates


def _fleet_options(args: argparse.Namespace, bundles: list, **overrides: Any):
    from device_sim.fleet import FleetOptions

    return FleetOptions(
        broker_url=args.broker,
        bundles=bundles,
        credentials=_credentials(args),
        passwords=_device_passwords(args),
        rate_hz=args.rate,
        task_rate_hz=_task_rates(args.task_rate),
        fast=args.fast,
        duration_s=args.duration,
        max_windows=args.max_windows,
        prediction_qos=args.qos,
        state_dir=args.state_dir,
        spool_max=args.spool_max,
        seed=args.seed,
        ha_discovery=args.ha_discovery,
        **overrides,
    )


def run_simulate(args: argparse.Namespace) -> int:
    from device_sim.fleet import run_sharded

    options = _fleet_options(
        args,
        _bundles(args),
        devices=args.devices,
        device_prefix=args.device_prefix,
        shared_recordings=args.shared_recordings,
    )
    from device_sim import console

    with console.ticking(args.duration, f"simulating {args.devices} device(s)"):
        result = run_sharded(options, args.processes)
    emit(result, args.json, _render_fleet)
    return 0 if result["published"]["undelivered"] == 0 else 1


def run_device(args: argparse.Namespace) -> int:
    from device_sim.fleet import run_fleet

    if args.mic:
        args.source = "mic"
    if args.source == "file" and args.path is None:
        raise ConfigError("--source file needs --path FILE")
    bundles = [load_bundle(path) for path in args.bundle]
    listening = tasks_with("live_microphone")
    if args.source == "mic" and any(bundle.task not in listening for bundle in bundles):
        raise ConfigError(f"--mic feeds audio: use it with {', '.join(listening)} bundles only")
    if args.model_dir is not None:  # keep running what was rolled out before a restart
        from device_sim.mqtt.rollout import rolled_out_bundles

        bundles = rolled_out_bundles(bundles, args.model_dir)
    device_id = args.device_id or socket.gethostname().split(".")[0]
    options = _fleet_options(
        args,
        bundles,
        devices=1,
        device_ids=[device_id],
        spool_name=f"device-{device_id}",
        source_kind=args.source,
        source_path=args.path,
    )
    if args.source in ("stdin", "mic"):
        # stdin and the microphone deliver samples at their own pace: process windows as they come
        options.fast, options.rate_hz = True, None
    result = run_fleet(options, model_dir=args.model_dir)
    emit(result, args.json, _render_fleet)
    return 0 if result["published"]["undelivered"] == 0 else 1


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_connection_options(parser)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate", type=float, help="windows per second per task per device (default: real time)"
    )
    pace.add_argument("--fast", action="store_true", help="as fast as possible (benchmarks)")
    parser.add_argument(
        "--task-rate",
        action="append",
        metavar="TASK=HZ",
        help="windows per second of one task, e.g. vibration=1 (repeatable; others: --rate or "
        "real time)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--max-windows", type=int, help="stop each device's task after this many windows"
    )
    parser.add_argument(
        "--qos", type=int, choices=(0, 1), default=0, help="QoS of predictions (events: 1)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="outbox and seq counters, kept across restarts (default .tinyfleet-state)",
    )
    parser.add_argument(
        "--spool-max",
        type=int,
        default=50_000,
        help="messages each device keeps on disk while the broker is unreachable",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="device-id:password lines (`tinyfleet credentials add ID --passwords-file FILE`): "
        "each device logs in as its id with its own password",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated sensors")
    parser.add_argument(
        "--ha-discovery", action="store_true", help="publish Home Assistant discovery configs"
    )
    add_json_flag(parser)


# -- subscribe ----------------------------------------------------------------------------------
def _table(subscriber, started: float) -> str:
    summary = subscriber.summary()
    lines = [
        f"{'device':<16} {'msgs':>7} {'rate/s':>7} {'latency ms':>10} {'gaps':>5} {'dups':>5}  last",
    ]
    for device, figures in summary["devices"].items():
        latency = figures["latency_ms_median"]
        lines.append(
            f"{terminal_safe(device):<16} {figures['received']:>7} {figures['rate_per_s']:>7.2f} "
            f"{'-' if latency is None else f'{latency:.0f}':>10} {figures['missing']:>5} "
            f"{figures['duplicates']:>5}  {terminal_safe(figures['last'])}"
        )
    lines.append(
        f"{time.monotonic() - started:.0f} s: {summary['predictions']} predictions, "
        f"{summary['duplicates']} duplicates, {summary['missing']} missing, "
        f"{summary['malformed']} malformed, {summary['identity_mismatch']} spoofed "
        "(body disagrees with topic)"
    )
    return "\n".join(lines)


def run_subscribe(args: argparse.Namespace) -> int:
    from ops.store_postgres import open_store
    from ops.subscriber import Subscriber

    def print_line(prediction, payload: bytes, received_ms: int) -> None:
        text = payload.decode()
        if _UNSAFE_FOR_TERMINAL.search(text):  # strict JSON allows raw C1 and bidi characters
            text = json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":"))
        sys.stdout.write(text + "\n")

    store_options = {}
    if args.commit_ms is not None:
        if args.commit_ms < 0:
            raise ConfigError("--commit-ms must be 0 or more milliseconds")
        store_options["commit_interval_s"] = args.commit_ms / 1000
    store = open_store(args.store, **store_options) if args.store else None
    health = None
    if args.monitor:  # drift/silence health events as in `tinyfleet monitor`
        from tinyfleet.commands.monitor import HealthPublisher

        health = HealthPublisher(args.monitor, None, 60.0, args.json)

    def on_prediction(prediction, payload: bytes, received_ms: int) -> None:
        if args.json:
            print_line(prediction, payload, received_ms)
        if health is not None:
            health.on_prediction(prediction, payload, received_ms)

    subscriber = Subscriber(
        args.broker,
        credentials=_credentials(args),
        share=args.share,
        client_id=args.client_id,
        store=store,
        on_prediction=on_prediction if args.json or health else None,
    )
    if health is not None:
        health.subscriber = subscriber
    started = time.monotonic()
    tty = sys.stdout.isatty()

    def tick() -> None:
        if health is not None:
            health.tick()
        if args.json:
            sys.stdout.flush()
            return
        text = _table(subscriber, started)
        sys.stdout.write(("\x1b[H\x1b[2J" + text + "\n") if tty else text + "\n\n")
        sys.stdout.flush()

    try:
        subscriber.run(args.duration, args.count, tick=tick, tick_interval_s=args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()
    summary = subscriber.summary()
    if args.json:
        sys.stdout.write(json.dumps({"summary": summary}) + "\n")
    else:
        sys.stdout.write(_table(subscriber, started) + "\n")
    sys.stdout.flush()
    return 0


# -- registration ----------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    broker = subparsers.add_parser(
        "broker",
        help="run a local mosquitto broker on 127.0.0.1 (prints its URL)",
        description="Start mosquitto on 127.0.0.1 with a generated config and run until Ctrl-C. "
        "Falls back to an in-process amqtt broker (MQTT 3.1.1 only) if mosquitto is not installed.",
    )
    broker.add_argument("--port", type=int, default=1883, help="TCP port (default 1883)")
    broker.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".tinyfleet-broker"),
        help="config, log and persistence file (default .tinyfleet-broker)",
    )
    broker.add_argument(
        "--persistence", action="store_true", help="keep sessions and queued messages on disk"
    )
    broker.add_argument(
        "--secure",
        action="store_true",
        help="TLS + passwords + ACL from --state-dir (see `tinyfleet credentials`)",
    )
    broker.add_argument(
        "--websockets", type=int, metavar="PORT", help="also listen for websockets on PORT"
    )
    add_json_flag(broker)
    broker.set_defaults(func=run_broker)

    simulate = subparsers.add_parser(
        "simulate",
        help="run N simulated devices publishing predictions over MQTT",
        description="Each device has its own client id, Last Will and seeded sensor sources, runs "
        "the front end and int8 interpreter of every bundle, and publishes one prediction per "
        "window on tinyfleet/<device>/<task>/prediction. With --json prints counts and per-task "
        "timing medians at exit.",
    )
    simulate.add_argument("--devices", type=int, default=3, help="how many devices (default 3)")
    simulate.add_argument("--tasks", help="comma-separated tasks, e.g. kws,vibration,air_quality")
    simulate.add_argument("--bundles", type=Path, nargs="+", help="bundle folders")
    simulate.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="folder holding <task>/ bundles (default artifacts/)",
    )
    simulate.add_argument("--device-prefix", default="sim", help="device ids are PREFIX-000 …")
    simulate.add_argument(
        "--processes", type=int, default=1, help="split the devices across this many processes"
    )
    simulate.add_argument(
        "--shared-recordings",
        type=int,
        default=0,
        metavar="K",
        help="simulated sensors replay K recordings per task rendered once per process, instead "
        "of a simulator per device (big fleets: less CPU and memory; default 0: off)",
    )
    _add_run_options(simulate)
    simulate.set_defaults(func=run_simulate)

    device = subparsers.add_parser(
        "device",
        help="run one device on real data (stdin, a file) or the simulator",
        description="One device: several --bundle folders make a multi-sensor node. Samples come "
        "from stdin, a recording (--source file --path FILE) or the task's simulator.",
    )
    device.add_argument(
        "--bundle", type=Path, action="append", required=True, help="bundle folder (repeatable)"
    )
    device.add_argument("--source", choices=("stdin", "file", "sim", "mic"), default="sim")
    device.add_argument(
        "--mic",
        action="store_true",
        help=task_option_help("--mic"),
    )
    device.add_argument("--path", type=Path, help="recording for --source file")
    device.add_argument("--device-id", help="device id (default: the host name)")
    device.add_argument(
        "--model-dir",
        type=Path,
        help="accept model rollouts and keep rolled-out bundles here (see `tinyfleet rollout`)",
    )
    _add_run_options(device)
    device.set_defaults(func=run_device)

    subscribe = subparsers.add_parser(
        "subscribe",
        help="watch a fleet's predictions: live table, JSON lines, SQLite",
        description="Subscribes (QoS 1) to tinyfleet/+/+/prediction, deduplicates by (device, "
        "task, seq), counts gaps and malformed messages. --json prints each prediction as one "
        'JSON line and a final {"summary": …} line.',
    )
    _add_connection_options(subscribe)
    subscribe.add_argument(
        "--store",
        help="also store predictions: an SQLite file, or postgresql://USER@HOST:PORT/DB",
    )
    subscribe.add_argument(
        "--commit-ms",
        type=float,
        metavar="MS",
        help="--store: a received prediction is stored within MS milliseconds (one transaction "
        "per 500 rows or per MS; default 20 for SQLite, 500 for PostgreSQL)",
    )
    subscribe.add_argument(
        "--monitor",
        type=Path,
        action="append",
        metavar="BUNDLE",
        help="also watch for drift/silence against BUNDLE's reference (as `tinyfleet monitor`)",
    )
    subscribe.add_argument(
        "--share", metavar="GROUP", help="MQTT v5 shared subscription: split the load in GROUP"
    )
    subscribe.add_argument(
        "--client-id", help="persistent session: the broker queues predictions while away"
    )
    subscribe.add_argument("--duration", type=float, help="stop after this many seconds")
    subscribe.add_argument("--count", type=int, help="stop after this many predictions")
    subscribe.add_argument("--interval", type=float, default=1.0, help="table refresh (s)")
    add_json_flag(subscribe)
    subscribe.set_defaults(func=run_subscribe)
