"""Fleet figures measured the way a user runs the fleet: the `tinyfleet` CLI in subprocesses.

Sections of ``benchmarks/fleet.py`` that need no in-process fleet (the sensors are the tasks' own
simulators, not pre-rendered windows):

* ``fast`` — ``tinyfleet simulate --fast --qos 1`` → mosquitto → an independent ``mosquitto_sub``
  that counts the predictions (not our code): predictions/s end to end, loss, and the CPU split
  (simulate processes / mosquitto / mosquitto_sub) per prediction;
* ``live`` — ``simulate`` in real time (``--task-rate`` for tasks slower than real time) →
  mosquitto → ``tinyfleet subscribe --store``: window-ready → received and → stored latency read
  from the store's rows (``received_ms``/``stored_ms - window_end_ms``), loss = published −
  stored, CPU split;
* ``memory`` — RSS of ``simulate`` (all its processes) at N devices, per device;
* ``mosquitto_limit`` — ``mosquitto_pub`` → mosquitto → ``mosquitto_sub`` with ready payloads of
  a prediction's size, QoS 1: the broker path alone, without any of our code;
* ``batched_invoke`` — the interpreter alone, ms per window at batch 1 and batch 64.

CPU times come from ``/proc`` (children's rusage for ``simulate`` and its workers), so they hold on
a shared machine where wall-clock rates do not; the load average is recorded with each section.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINYFLEET = [sys.executable, "-m", "tinyfleet.cli"]


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a running process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (bytes)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Counter:
    """``mosquitto_sub`` writing one receipt time per prediction to a file."""

    def __init__(self, port: int, folder: Path, topic: str = "tinyfleet/+/+/prediction") -> None:
        self.path = folder / "mosquitto_sub.txt"
        self._file = self.path.open("w")
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", "1", "-F", "%U"],
            stdout=self._file,
        )
        time.sleep(0.5)
        self.cpu0 = cpu_seconds(self.process.pid)

    def lines(self) -> int:
        with self.path.open() as f:
            return sum(1 for _ in f)

    def finish(self, expected: int, idle_s: float = 3.0) -> dict[str, Any]:
        """Wait until ``expected`` receipts or ``idle_s`` without a new one; then stop."""
        last, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < idle_s:
            count = self.lines()
            if count >= expected:
                break
            if count != last:
                last, last_change = count, time.monotonic()
            time.sleep(0.2)
        cpu = cpu_seconds(self.process.pid) - self.cpu0
        self.process.send_signal(signal.SIGINT)
        self.process.wait(10)
        self._file.close()
        stamps = [float(x) for x in self.path.read_text().split()]
        span = (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0
        return {"received": len(stamps), "span_s": span, "cpu_s": cpu}


def _simulate_args(args, bundles, broker_url: str, state: Path) -> list[str]:
    return [
        *TINYFLEET, "simulate", "--bundles", *(str(b.directory) for b in bundles),
        "--broker", broker_url, "--qos", "1", "--state-dir", str(state), "--json",
        "--shared-recordings", str(args.shared_recordings),
    ]  # fmt: skip


def _run_simulate(command: list[str], timeout: float) -> tuple[dict[str, Any], float, int]:
    """Run simulate; returns (its JSON report, CPU s of it and its workers, peak RSS bytes)."""
    import json

    cpu0 = children_cpu_seconds()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    peak = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        peak = max(peak, tree_rss_bytes(process.pid))
        time.sleep(0.5)
    out, err = process.communicate(timeout=60)
    if process.returncode not in (0, 1):
        raise RuntimeError(f"simulate failed: {err.decode()[-2000:]}")
    return json.loads(out), children_cpu_seconds() - cpu0, peak


def _split(fleet_s: float, broker_s: float, consumer_s: float, n: int, consumer: str) -> dict:
    return {
        "devices": round(1000 * fleet_s / n, 4),
        "mosquitto": round(1000 * broker_s / n, 4),
        consumer: round(1000 * consumer_s / n, 4),
        "total": round(1000 * (fleet_s + broker_s + consumer_s) / n, 4),
    }


def bench_fast(args, bundles) -> dict[str, Any]:
    from ops.broker import MosquittoBroker

    load = load_average()
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        counter = Counter(broker.port, Path(tmp))
        broker_cpu = cpu_seconds(broker.pid)
        command = _simulate_args(args, bundles, broker.url, Path(tmp) / "state")
        command += ["--fast", "--devices", str(args.fast_devices), "--duration", str(args.seconds)]
        command += ["--processes", str(args.processes)]
        report, fleet_cpu, peak = _run_simulate(command, args.seconds + 300)
        published = report["published"]["predictions"]
        received = counter.finish(published)
        broker_cpu = cpu_seconds(broker.pid) - broker_cpu
    return {
        "tasks": [b.task for b in bundles],
        "devices": args.fast_devices,
        "processes": args.processes,
        "published": published,
        "received_by_mosquitto_sub": received["received"],
        "lost": published - received["received"],
        "end_to_end_predictions_per_s": round(received["received"] / received["span_s"], 1)
        if received["span_s"]
        else None,
        # devices: CPU of the simulate processes while they ran (imports and start-up excluded)
        "cpu_ms_per_prediction": _split(
            report["cpu_seconds"], broker_cpu, received["cpu_s"], published, "mosquitto_sub"
        ),
        "simulate_cpu_s_including_start_up": round(fleet_cpu, 2),
        "fleet_rss_mb": round(peak / 2**20, 1),
        "load_average": [load, load_average()],
    }


def _store_rows(path: Path) -> list[tuple[int, int, int]]:
    try:
        with sqlite3.connect(path) as db:
            return db.execute(
                "SELECT window_end_ms, received_ms, stored_ms FROM predictions"
            ).fetchall()
    except sqlite3.Error:
        return []


def bench_live(args, bundles) -> dict[str, Any]:
    from ops.broker import MosquittoBroker

    load = load_average()
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        store = Path(tmp) / "predictions.sqlite"
        subscriber = subprocess.Popen(
            [*TINYFLEET, "subscribe", "--broker", broker.url, "--store", str(store),
             "--client-id", "bench-store", "--interval", "100000",
             "--commit-ms", str(args.commit_ms)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        time.sleep(3)  # imports + connect
        subscriber_cpu = cpu_seconds(subscriber.pid)
        broker_cpu = cpu_seconds(broker.pid)
        command = _simulate_args(args, bundles, broker.url, Path(tmp) / "state")
        command += ["--devices", str(args.devices), "--duration", str(args.seconds)]
        command += ["--processes", str(args.processes)]
        for item in args.task_rate or []:
            command += ["--task-rate", item]
        report, fleet_cpu, peak = _run_simulate(command, args.seconds + 600)
        published = report["published"]["predictions"]
        last, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < 5:
            count = len(_store_rows(store))
            if count >= published:
                break
            if count != last:
                last, last_change = count, time.monotonic()
            time.sleep(0.5)
        subscriber_cpu = cpu_seconds(subscriber.pid) - subscriber_cpu
        broker_cpu = cpu_seconds(broker.pid) - broker_cpu
        subscriber.send_signal(signal.SIGINT)
        subscriber.wait(30)
        rows = _store_rows(store)
    received_latency = sorted(received - end for end, received, _ in rows)
    stored_latency = sorted(stored - end for end, _, stored in rows)

    def pct(latencies: list[int], q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    def summary(latencies: list[int]) -> dict[str, Any]:
        return {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": pct(latencies, 1)}

    return {
        "tasks": [b.task for b in bundles],
        "devices": args.devices,
        "processes": args.processes,
        "task_rates": args.task_rate or "real time",
        "seconds": report["seconds"],
        "published": published,
        "stored": len(rows),
        "lost": published - len(rows),
        "predictions_per_s": round(published / report["seconds"], 1),
        "window_ready_to_received_ms": summary(received_latency),
        "window_ready_to_stored_ms": summary(stored_latency),
        "store_commit_ms": args.commit_ms,
        "max_schedule_lag_ms": report["max_schedule_lag_ms"],
        "cpu_ms_per_prediction": _split(
            report["cpu_seconds"], broker_cpu, subscriber_cpu, published, "subscriber_store"
        ),
        "fleet_cpu_share_of_2_cores": round(report["cpu_seconds"] / report["seconds"] / 2, 3),
        "simulate_cpu_s_including_start_up": round(fleet_cpu, 2),
        "fleet_rss_mb": round(peak / 2**20, 1),
        "load_average": [load, load_average()],
    }


def bench_memory(args, bundles) -> dict[str, Any]:
    """Peak RSS of ``simulate`` (one process, real time) at each fleet size, per device."""
    from ops.broker import MosquittoBroker

    results = {}
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        for devices in args.memory_devices:
            command = _simulate_args(args, bundles, broker.url, Path(tmp) / f"state-{devices}")
            command += ["--devices", str(devices), "--duration", str(args.memory_seconds)]
            for item in args.task_rate or []:
                command += ["--task-rate", item]
            _, _, peak = _run_simulate(command, args.memory_seconds + 600)
            results[devices] = peak
    sizes = sorted(results)
    out: dict[str, Any] = {
        "tasks": [b.task for b in bundles],
        "seconds": args.memory_seconds,
        "rss_mb": {n: round(results[n] / 2**20, 1) for n in sizes},
        "rss_mb_per_device": {n: round(results[n] / n / 2**20, 3) for n in sizes},
    }
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        out["marginal_mb_per_device"] = round((results[b] - results[a]) / (b - a) / 2**20, 3)
    return out


def bench_mosquitto_limit(args, bundles) -> dict[str, Any]:
    """mosquitto_pub (ready payloads, QoS 1) → mosquitto → mosquitto_sub: the broker path alone."""
    from device_sim.mqtt.payload import encode_prediction
    from ops.broker import MosquittoBroker

    payload = encode_prediction(
        device="sim-000",
        task="kws",
        model={"name": "kws", "version": "20261202.000000-00000000", "sha256": "0" * 64},
        seq=0,
        window_start_ms=0,
        window_end_ms=1000,
        fields={"label": "yes", "score": 0.9, "scores": {f"l{i}": 0.01 for i in range(12)}},
    )
    n = args.limit_messages
    load = load_average()
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        lines = Path(tmp) / "payloads.txt"
        lines.write_bytes((payload + b"\n") * n)
        counter = Counter(broker.port, Path(tmp), topic="bench/#")
        broker_cpu = cpu_seconds(broker.pid)
        cpu0 = children_cpu_seconds()
        with lines.open("rb") as stdin:
            subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-t", "bench/t", "-q", "1", "-l"],
                stdin=stdin,
                check=True,
                timeout=600,
            )
        pub_cpu = children_cpu_seconds() - cpu0
        received = counter.finish(n)
        broker_cpu = cpu_seconds(broker.pid) - broker_cpu
    return {
        "messages": n,
        "payload_bytes": len(payload),
        "received": received["received"],
        "messages_per_s": round(received["received"] / received["span_s"], 1)
        if received["span_s"]
        else None,
        "cpu_ms_per_message": {
            "mosquitto_pub": round(1000 * pub_cpu / n, 4),
            "mosquitto": round(1000 * broker_cpu / n, 4),
            "mosquitto_sub": round(1000 * received["cpu_s"] / n, 4),
        },
        "load_average": [load, load_average()],
    }


def bench_batched_invoke(args, bundles) -> dict[str, Any]:
    """CPU ms per window of the interpreter alone (quantize + invoke + dequantize)."""
    from device_sim.interpreter import Int8Model

    results = {}
    rng = np.random.default_rng(0)
    for bundle in bundles:
        model = Int8Model.from_bundle(bundle)
        features = rng.normal(0, 1, (64, *model.input_spec.shape[1:])).astype(np.float32)
        model.predict_batch(features)  # builds the resized interpreters
        single, batched = [], []
        for _ in range(max(3, args.repeats // 30)):
            t0 = time.process_time()
            for row in features:
                model.predict(row)
            t1 = time.process_time()
            model.predict_batch(features)
            t2 = time.process_time()
            single.append((t1 - t0) * 1000 / len(features))
            batched.append((t2 - t1) * 1000 / len(features))
        results[bundle.task] = {
            "batch_1_ms_per_window": round(statistics.median(single), 4),
            "batch_64_ms_per_window": round(statistics.median(batched), 4),
        }
    return results
