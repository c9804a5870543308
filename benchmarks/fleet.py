"""Fleet benchmarks: throughput, live-fleet latency, device path cost, front end vs librosa.

Each figure is measured in this run, on this machine, with real parts (mosquitto on a loopback
port, LiteRT, the bundles' own front ends); the subscriber runs in its own process.

    python benchmarks/fleet.py --bundle artifacts/vibration [--json]
    python benchmarks/fleet.py --only live --devices 1000 --rate 1 --seconds 20

Sections (``--only``):
* ``throughput`` — ``--fast`` devices → mosquitto → subscriber at QoS 1: inferences/s end to end
  (unique predictions received / time from first window to last receipt) and loss;
* ``transport`` — the same path with pre-computed payloads (no inference): the MQTT ceiling;
* ``live`` — N devices at real-time pacing (or ``--rate``): p50/p99 window-ready → receipt, loss;
* ``device_path`` — per window, front end + invoke vs the bare ``invoke`` of the same model;
* ``frontend`` — the KWS log-mel front end vs librosa computing the same features.

and, through the CLI as a user runs it (``benchmarks/fleet_cli.py``): ``fast`` (counted by an
independent ``mosquitto_sub``), ``live_store`` (into ``tinyfleet subscribe --store``), ``memory``,
``mosquitto_limit`` (mosquitto_pub → mosquitto_sub alone) and ``batched_invoke``.

    python benchmarks/fleet.py --bundle artifacts/kws --only fast --fast-devices 50
    python benchmarks/fleet.py --bundle artifacts/kws --bundle artifacts/vibration \
        --bundle artifacts/air_quality --only live_store --devices 1000 \
        --task-rate vibration=1 --task-rate air_quality=1 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_sim.bundle import load_bundle  # noqa: E402
from device_sim.fleet import FleetOptions, run_sharded  # noqa: E402
from ops.broker import MosquittoBroker  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_cli  # noqa: E402

log = logging.getLogger("benchmarks.fleet")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


# -- the subscriber process --------------------------------------------------------------------
def _subscribe(url: str, ready, results, idle_s: float, max_s: float, keep: bool) -> None:
    """Count unique predictions until ``idle_s`` without a message (or ``max_s``)."""
    from ops.subscriber import Subscriber

    state = {"first": None, "last": None}
    device_ms: list[float] = []  # window end → prediction made (ts_ms): the device's share

    def on_prediction(prediction, payload, received_ms) -> None:
        if keep:
            device_ms.append(prediction.ts_ms - prediction.window_end_ms)
        now = time.time()
        state["first"] = state["first"] or now
        state["last"] = now

    subscriber = Subscriber(
        url, client_id="bench-sub", on_prediction=on_prediction, keep_latencies=keep
    )
    subscriber.wait_connected()
    cpu0 = time.process_time()  # after imports and connecting
    ready.set()
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        subscriber.run(duration_s=0.5)
        if state["last"] is not None and time.time() - state["last"] > idle_s:
            break
    summary = subscriber.summary()
    latencies = subscriber.all_latencies_ms or []
    results.put(
        {
            "cpu_seconds": time.process_time() - cpu0,
            "unique": subscriber.unique,
            "messages": subscriber.received,
            "duplicates": subscriber.duplicates,
            "missing": subscriber.missing(),
            "malformed": subscriber.malformed,
            "first_receipt": state["first"],
            "last_receipt": state["last"],
            "latency_ms_p50": _percentile(latencies, 0.50),
            "latency_ms_p99": _percentile(latencies, 0.99),
            "latency_ms_max": _percentile(latencies, 1.0),
            "device_share_ms_p50": _percentile(device_ms, 0.50),
            "device_share_ms_p99": _percentile(device_ms, 0.99),
            "devices_seen": len(summary["devices"]),
        }
    )
    subscriber.close()


class SubscriberProcess:
    def __init__(
        self, url: str, idle_s: float = 3.0, max_s: float = 3600.0, keep_latencies: bool = True
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready = context.Event()
        self.results = context.Queue()
        self.process = context.Process(
            target=_subscribe,
            args=(url, self.ready, self.results, idle_s, max_s, keep_latencies),
            daemon=True,
        )
        self.process.start()
        if not self.ready.wait(60):
            raise RuntimeError("the subscriber process did not connect")

    def result(self, timeout: float = 600) -> dict[str, Any]:
        value = self.results.get(timeout=timeout)
        self.process.join(10)
        return value


class ReplaySource:
    """Rows rendered once by the task's simulator, replayed in a loop: the benchmark measures the
    device and the transport, not how fast the physics/speech simulators render."""

    def __init__(self, rows: np.ndarray, sample_rate: float) -> None:
        self.rows, self.sample_rate, self.position = rows, sample_rate, 0

    def read(self, n: int) -> np.ndarray:
        index = (self.position + np.arange(n)) % len(self.rows)
        self.position = (self.position + n) % len(self.rows)
        return self.rows[index]

    def close(self) -> None:
        pass


class ReplayFactory:
    """Picklable source factory for :func:`run_sharded`: ``windows`` windows per device."""

    def __init__(self, windows: int = 8) -> None:
        self.windows = windows

    def __call__(self, bundle, index: int, seed: int) -> ReplaySource:
        from device_sim.features import frontend_from_dict
        from device_sim.sources import open_source

        source = open_source(bundle, "sim", seed=seed)
        rows = np.asarray(
            source.read(frontend_from_dict(bundle.feature_config).window_samples * self.windows)
        )
        source.close()
        return ReplaySource(rows, source.sample_rate)


def process_cpu_seconds(pid: int | None) -> float:
    """user + system CPU time of a process (Linux /proc), e.g. mosquitto's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def cpu_budget(fleet_s: float, broker_s: float, subscriber_s: float, messages: int) -> dict:
    """CPU ms per prediction by component, and what 2 otherwise idle cores could carry."""
    total = fleet_s + broker_s + subscriber_s
    return {
        "cpu_ms_per_prediction": {
            "devices": round(1000 * fleet_s / messages, 4),
            "mosquitto": round(1000 * broker_s / messages, 4),
            "subscriber": round(1000 * subscriber_s / messages, 4),
        },
        # an estimate, not a measurement: 2 cores / total CPU per prediction
        "cpu_bound_capacity_on_2_idle_cores_per_s": round(2 * messages / total, 0),
    }


def _fleet(url: str, bundles, state: Path, **kwargs) -> tuple[dict[str, Any], float]:
    processes = kwargs.pop("processes", 1)
    replay = kwargs.pop("replay", True)
    options = FleetOptions(url, bundles, state_dir=state, **kwargs)
    started = time.time()
    return run_sharded(options, processes, ReplayFactory() if replay else None), started


# -- sections ----------------------------------------------------------------------------------
def bench_throughput(args, bundles) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        subscriber = SubscriberProcess(broker.url)
        broker_cpu = process_cpu_seconds(broker.pid)
        report, started = _fleet(
            broker.url,
            bundles,
            Path(tmp) / "state",
            devices=args.fast_devices,
            fast=True,
            duration_s=args.seconds,
            prediction_qos=1,
            processes=args.processes,
        )
        received = subscriber.result()
        broker_cpu = process_cpu_seconds(broker.pid) - broker_cpu
    published = report["published"]["predictions"]
    span = (received["last_receipt"] or started) - (received["first_receipt"] or started)
    return {
        **cpu_budget(report["cpu_seconds"], broker_cpu, received["cpu_seconds"], published),
        "bundles": [b.name for b in bundles],
        "devices": args.fast_devices,
        "processes": args.processes,
        "published": published,
        "received_unique": received["unique"],
        "lost": published - received["unique"],
        "duplicates": received["duplicates"],
        "end_to_end_inferences_per_s": round(received["unique"] / span, 1) if span > 0 else None,
        "device_inferences_per_s": report["inferences_per_s"],
        "device_inferences_per_cpu_s": report["inferences_per_cpu_s"],
        "median_ms": {task: t["median_ms"] for task, t in report["per_task"].items()},
    }


def _transport_worker(url: str, devices: int, seconds: float, state: str, queue) -> None:
    """Publishers fed with ready-made payloads as fast as the outbox and broker accept them."""
    from device_sim.mqtt.client import NetworkLoop, parse_broker_url
    from device_sim.mqtt.payload import encode_prediction
    from device_sim.mqtt.publisher import Publisher
    from device_sim.mqtt.spool import Spool, SpoolDB

    loop, db = NetworkLoop(), SpoolDB(Path(state) / "transport.sqlite")
    publishers = [
        Publisher(f"tp-{i:03d}", parse_broker_url(url), Spool(db, f"tp-{i:03d}"), prediction_qos=1)
        for i in range(devices)
    ]
    for publisher in publishers:
        loop.add(publisher.connection)
    loop.idle_hooks.append(lambda: [db.commit(), *(p.drain() for p in publishers)])
    while not all(p.connected for p in publishers):
        loop.run_once(0.05)
    fields = {"anomaly_score": 0.123, "threshold": 1.0, "anomaly": False, "alarm": False}
    model = {"name": "m", "version": "v", "sha256": "0" * 64}
    deadline = time.monotonic() + seconds
    cpu0 = time.process_time()  # after imports and connecting
    count = 0
    while time.monotonic() < deadline:
        for publisher in publishers:
            if len(publisher.spool) > 2 * publisher.max_unacked:
                continue
            seq = publisher.spool.peek_seq("vibration")
            now = int(time.time() * 1000)
            payload = encode_prediction(
                device=publisher.device_id,
                task="vibration",
                model=model,
                seq=seq,
                window_start_ms=now - 640,
                window_end_ms=now,
                fields=fields,
                timing_ms={"features": 0.1, "invoke": 0.1, "total": 0.2},
            )
            publisher.enqueue_prediction("vibration", seq, payload)
            count += 1
        loop.run_once(0)
    while sum(len(p.spool) for p in publishers) and time.monotonic() < deadline + 30:
        loop.run_once(0.01)
    queue.put((count, time.process_time() - cpu0))


def bench_transport(args, bundles) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        subscriber = SubscriberProcess(broker.url)
        broker_cpu = process_cpu_seconds(broker.pid)
        queue = context.Queue()
        started = time.time()
        worker = context.Process(
            target=_transport_worker, args=(broker.url, 10, args.seconds, tmp, queue)
        )
        worker.start()
        published, worker_cpu = queue.get(timeout=args.seconds + 120)
        worker.join(10)
        received = subscriber.result()
        broker_cpu = process_cpu_seconds(broker.pid) - broker_cpu
    span = received["last_receipt"] - (received["first_receipt"] or started)
    return {
        **cpu_budget(worker_cpu, broker_cpu, received["cpu_seconds"], published),
        "published": published,
        "received_unique": received["unique"],
        "lost": published - received["unique"],
        "messages_per_s": round(received["unique"] / span, 1) if span > 0 else None,
    }


def bench_live(args, bundles) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        subscriber = SubscriberProcess(broker.url)
        report, _ = _fleet(
            broker.url,
            bundles,
            Path(tmp) / "state",
            devices=args.devices,
            rate_hz=args.rate,
            duration_s=args.seconds,
            prediction_qos=1,
            processes=args.processes,
        )
        received = subscriber.result()
    published = report["published"]["predictions"]
    return {
        "devices": args.devices,
        "processes": args.processes,
        "rate_hz_per_device": args.rate or "real time",
        "seconds": report["seconds"],
        "published": published,
        "received_unique": received["unique"],
        "lost": published - received["unique"],
        "window_ready_to_receipt_ms": {
            "p50": received["latency_ms_p50"],
            "p99": received["latency_ms_p99"],
            "max": received["latency_ms_max"],
        },
        # of which window end → prediction made on the device (scheduling + inference)
        "window_ready_to_published_ms": {
            "p50": received["device_share_ms_p50"],
            "p99": received["device_share_ms_p99"],
        },
        "max_schedule_lag_ms": report["max_schedule_lag_ms"],
        "fleet_cpu_seconds": report["cpu_seconds"],
        "reconnects": report["reconnects"],
    }


def bench_device_path(args, bundles) -> dict[str, Any]:
    from device_sim.features import frontend_from_dict
    from device_sim.interpreter import Int8Model
    from device_sim.sources import open_source

    results = {}
    for bundle in bundles:
        frontend = frontend_from_dict(bundle.feature_config)
        model = Int8Model.from_bundle(bundle)
        source = open_source(bundle, "sim", seed=1)
        window = np.asarray(source.read(frontend.window_samples))
        quantized = model.input_spec.quantize(frontend(window)[np.newaxis])
        features = frontend(window)
        bare, wrapped, path = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.invoke_quantized(quantized)
            t1 = time.perf_counter()
            model.predict(features)
            t2 = time.perf_counter()
            model.predict(frontend(window))
            t3 = time.perf_counter()
            bare.append((t1 - t0) * 1000)
            wrapped.append((t2 - t1) * 1000)
            path.append((t3 - t2) * 1000)
        b, w, p = (statistics.median(v) for v in (bare, wrapped, path))
        results[bundle.task] = {
            "bare_invoke_ms_median": round(b, 4),
            # quantize + invoke + dequantize: what the device adds around the interpreter
            "predict_ms_median": round(w, 4),
            "predict_over_bare": round(w / b, 2),
            "front_end_plus_predict_ms_median": round(p, 4),
            "path_over_bare": round(p / b, 2),
        }
    return results


def bench_frontend(args, bundles) -> dict[str, Any]:
    import librosa

    from device_sim.features.audio import LogMelConfig

    config = LogMelConfig()
    frontend = config.build()
    rng = np.random.default_rng(0)
    window = (0.1 * rng.standard_normal(config.window_samples)).astype(np.float32)

    def with_librosa(y: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=y,
            sr=config.sample_rate,
            n_fft=config.fft_length,
            hop_length=config.hop_samples,
            win_length=config.frame_samples,
            window="hann",
            center=False,
            power=config.spectrum_power,
            n_mels=config.n_mels,
            fmin=config.fmin_hz,
            fmax=config.fmax_hz,
            htk=True,
            norm=None,
        )
        return np.log(mel + config.log_floor).T

    with_librosa(window)  # warm-up (librosa caches filters)
    ours, theirs = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a = frontend(window)
        t1 = time.perf_counter()
        b = with_librosa(window)
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1000)
        theirs.append((t2 - t1) * 1000)
    frames = min(a.shape[0], b.shape[0])
    correlation = float(np.corrcoef(a[:frames, :, 0].ravel(), b[:frames].ravel())[0, 1])
    return {
        "features": f"log-mel {config.n_mels} × {frontend.n_frames} frames, 1 s at 16 kHz",
        "ours_ms_median": round(statistics.median(ours), 4),
        "librosa_ms_median": round(statistics.median(theirs), 4),
        "speedup": round(statistics.median(theirs) / statistics.median(ours), 2),
        # librosa centres the 480-sample window in the 512-sample FFT frame; ours zero-pads the
        # end, so values differ slightly: the correlation shows they are the same features
        "correlation_with_librosa": round(correlation, 4),
    }


SECTIONS = {
    "throughput": bench_throughput,
    "transport": bench_transport,
    "live": bench_live,
    "device_path": bench_device_path,
    "frontend": bench_frontend,
    "fast": fleet_cli.bench_fast,
    "live_store": fleet_cli.bench_live,
    "memory": fleet_cli.bench_memory,
    "mosquitto_limit": fleet_cli.bench_mosquitto_limit,
    "batched_invoke": fleet_cli.bench_batched_invoke,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bundle", type=Path, action="append", help="bundle folder (default artifacts/*)"
    )
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each MQTT run")
    parser.add_argument("--devices", type=int, default=1000, help="live fleet size")
    parser.add_argument("--rate", type=float, default=1.0, help="live: windows/s per device")
    parser.add_argument("--fast-devices", type=int, default=4, help="throughput: devices")
    parser.add_argument("--processes", type=int, default=2, help="fleet processes")
    parser.add_argument("--repeats", type=int, default=300, help="timing repeats")
    parser.add_argument(
        "--task-rate", action="append", metavar="TASK=HZ", help="live_store/memory: task rates"
    )
    parser.add_argument(
        "--memory-devices", type=int, nargs="+", default=[100, 1000], help="memory: fleet sizes"
    )
    parser.add_argument(
        "--shared-recordings", type=int, default=0, metavar="K", help="CLI sections: simulate's K"
    )
    parser.add_argument("--memory-seconds", type=float, default=20.0, help="memory: run time")
    parser.add_argument(
        "--limit-messages", type=int, default=50_000, help="mosquitto_limit: messages"
    )
    parser.add_argument(
        "--commit-ms", type=float, default=20.0, help="live_store: subscribe --commit-ms"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    paths = args.bundle or sorted(p.parent for p in Path("artifacts").glob("*/bundle.json"))
    sections = args.only or list(SECTIONS)
    if not paths:
        log.warning(
            "no bundles (pass --bundle DIR, or build into artifacts/): only the front-end section "
            "runs"
        )
        sections = [s for s in sections if s == "frontend"]
    bundles = [load_bundle(p) for p in paths]
    results: dict[str, Any] = {
        "machine_cpus": multiprocessing.cpu_count(),
        "load_average_at_start": fleet_cli.load_average(),
    }
    for name in sections:
        started = time.perf_counter()
        results[name] = SECTIONS[name](args, bundles)
        results[name]["bench_seconds"] = round(time.perf_counter() - started, 1)
        if not args.json:
            print(f"== {name}\n{json.dumps(results[name], indent=2)}", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
