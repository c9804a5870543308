"""N simulated devices in one process, driven by one thread: a window scheduler + a network loop.

Why one thread: a thread per device (and paho's own thread per client) does not scale past a few
hundred devices on a small machine — the GIL hand-offs dominate. Here one
:class:`~device_sim.mqtt.client.NetworkLoop` multiplexes every device's MQTT socket with
``selectors``, and a heap of due times says which device's next window is ready.

Pacing: in real time a window of a task is due every ``hop_samples / sample_rate`` seconds (or
``1 / rate_hz`` with ``rate_hz``); devices start at seeded random phases so a fleet does not fire
in lock-step. The window's ``end_ms`` is its due time on the wall clock, so a subscriber's
``receipt - end_ms`` is the true window-ready → delivered latency. With ``fast`` windows are
produced as fast as the CPU and the broker allow (back-pressure: a device whose outbox holds more
than ``2 × max_unacked`` messages waits).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import multiprocessing
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_sim.bundle import Bundle
from device_sim.device import Device, ModelCache, TaskPipeline, build_pipeline, run_windows
from device_sim.errors import ConfigError
from device_sim.mqtt.client import Credentials, NetworkLoop, parse_broker_url
from device_sim.mqtt.publisher import DEFAULT_EXPIRY_S, Publisher
from device_sim.mqtt.spool import DEFAULT_MAX_MESSAGES, Spool, SpoolDB
from device_sim.sources import Source

log = logging.getLogger(__name__)

# (bundle, device index, seed) → a source; tests and `tinyfleet device --source file` plug in here.
SourceFactory = Callable[[Bundle, int, int], Source]
SLOW_WINDOW_S = 60.0  # real-time windows further apart than this are worth a warning
MAX_BATCH_WINDOWS = 1024  # windows taken from the schedule at once (all due ones, up to this)
FAST_WINDOWS_PER_PASS = 512  # --fast: windows produced between two network passes ...
FAST_MIN_ROUNDS = 4  # ... and at least this many per (device, task)
SELF_PACED_SOURCES = ("stdin", "mic")  # reading blocks until the samples exist


@dataclass
class FleetOptions:
    """How to run a fleet. ``rate_hz`` is windows per second per task per device (None: the
    bundles' real time); ``duration_s`` None runs until the sources end or the run is stopped."""

    broker_url: str
    bundles: Sequence[Bundle]
    devices: int = 1
    device_ids: Sequence[str] | None = None
    device_prefix: str = "sim"
    credentials: Credentials = field(default_factory=Credentials)
    # device id → password (``--credentials FILE``); each device logs in as its id
    passwords: dict[str, str] | None = None
    rate_hz: float | None = None
    fast: bool = False
    duration_s: float | None = None
    max_windows: int | None = None  # per task per device
    prediction_qos: int = 0
    event_qos: int = 1
    expiry_s: int = DEFAULT_EXPIRY_S
    state_dir: Path = Path(".tinyfleet-state")
    spool_name: str = "fleet"
    spool_max: int = DEFAULT_MAX_MESSAGES
    spool_max_bytes: int | None = None  # a quota for the outbox file (None: the disk's size)
    seed: int = 0
    ha_discovery: bool = False
    source_kind: str = "sim"
    source_path: Path | None = None
    drain_timeout_s: float = 30.0
    keepalive_s: int = 30  # MQTT keepalive: a silent (half-open) link is noticed within ~2x this
    index_offset: int = 0  # first device index (a shard of a bigger fleet)
    # windows per second of single tasks (e.g. {"vibration": 1.0}: a condition monitor sampling
    # once a second); the others run at ``rate_hz`` or in real time
    task_rate_hz: Mapping[str, float] = field(default_factory=dict)
    # > 0: simulated sensors replay this many recordings per task, rendered once per process
    # (device_sim.sources.shared), instead of one simulator per device
    shared_recordings: int = 0

    def check(self) -> FleetOptions:
        if not self.bundles:
            raise ConfigError("no bundles: pass --bundles DIR... or --artifacts DIR")
        if self.devices < 1:
            raise ConfigError("--devices must be at least 1")
        if self.rate_hz is not None and self.rate_hz <= 0:
            raise ConfigError("--rate must be > 0 windows per second")
        if self.fast and self.rate_hz is not None:
            raise ConfigError("--rate and --fast exclude each other")
        if self.device_ids is not None and len(self.device_ids) != self.devices:
            raise ConfigError("give one device id per device")
        if any(not rate > 0 for rate in self.task_rate_hz.values()):
            raise ConfigError("--task-rate needs TASK=HZ with HZ > 0 windows per second")
        if self.shared_recordings < 0:
            raise ConfigError("--shared-recordings must be 0 (off) or more")
        if self.fast and self.task_rate_hz:
            raise ConfigError("--task-rate and --fast exclude each other")
        return self

    def device_credentials(self, device_id: str) -> Credentials:
        """How ``device_id`` logs in: its own password from ``passwords``, else ``credentials``."""
        if self.passwords is None:
            return _device_credentials(self.credentials, device_id)
        if device_id not in self.passwords:
            raise ConfigError(
                f"device {device_id} has no password in the credentials file: add it with "
                f"`tinyfleet credentials add {device_id} --passwords-file FILE`"
            )
        return dataclasses.replace(
            self.credentials, username=device_id, password=self.passwords[device_id]
        )


@dataclass
class _Slot:
    due: float
    device: Device
    task: str
    interval: float


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4)


class Fleet:
    """Build the devices of ``options`` and run them; :meth:`run` returns a summary dict."""

    def __init__(
        self,
        options: FleetOptions,
        source_factory: SourceFactory | None = None,
        model_dir: Path | None = None,
    ) -> None:
        self.options = options.check()
        if source_factory is None and options.shared_recordings and options.source_kind == "sim":
            from device_sim.sources.shared import SharedRecordings

            source_factory = SharedRecordings(options.shared_recordings, options.seed)
        prepare = getattr(source_factory, "prepare", None)
        if prepare is not None:  # e.g. render every task's shared recordings in one go
            prepare(list(options.bundles))
        self.address = parse_broker_url(options.broker_url)
        self.loop = NetworkLoop()
        self.cache = ModelCache()
        self.spool_db = SpoolDB(
            Path(options.state_dir) / f"{options.spool_name}.sqlite",
            max_bytes=options.spool_max_bytes,
        )
        self.devices: list[Device] = []
        self.stop_event = threading.Event()
        self.max_lag_ms = 0.0
        self.cpu_s = 0.0
        ids = list(options.device_ids or [])
        # per-window timing samples kept for the report: ~20k in all, at least 50 per pipeline
        keep_timings = max(50, 20_000 // (options.devices * len(options.bundles)))
        for local_index in range(options.devices):
            index = options.index_offset + local_index
            device_id = ids[local_index] if ids else f"{options.device_prefix}-{index:03d}"
            pipelines: list[TaskPipeline] = []
            for task_index, bundle in enumerate(options.bundles):
                seed = options.seed * 100_003 + index * 17 + task_index
                source = source_factory(bundle, index, seed) if source_factory else None
                pipelines.append(
                    build_pipeline(
                        bundle,
                        cache=self.cache,
                        source=source,
                        source_kind=options.source_kind,
                        path=options.source_path,
                        seed=seed,
                        realtime=False,  # the scheduler paces; a sleeping source would block all
                    )
                )
            publisher = Publisher(
                device_id,
                self.address,
                Spool(self.spool_db, device_id, options.spool_max),
                options.device_credentials(device_id),
                prediction_qos=options.prediction_qos,
                event_qos=options.event_qos,
                expiry_s=options.expiry_s,
                keepalive_s=options.keepalive_s,
            )
            self.devices.append(
                Device(
                    device_id,
                    pipelines,
                    publisher,
                    cache=self.cache,
                    ha_discovery=options.ha_discovery,
                    keep_timings=keep_timings,
                )
            )
            if model_dir is not None:
                from device_sim.mqtt.rollout import enable_rollout

                folder = model_dir if options.devices == 1 else model_dir / device_id
                enable_rollout(self.devices[-1], folder)
            self.loop.add(publisher.connection)
        self._dirty: set[Publisher] = set()
        for device in self.devices:
            device.publisher.on_pending = self._mark_dirty
            self._dirty.add(device.publisher)
        self.loop.idle_hooks.append(self._drain_all)
        self.spool_db.on_state_change.append(self._report_outbox)

    def _report_outbox(self, failure: str | None) -> None:
        for device in self.devices:
            device.publisher.report_outbox(failure)

    def _mark_dirty(self, publisher: Publisher) -> None:
        self._dirty.add(publisher)

    def _drain_all(self) -> None:
        # durable first (also while disconnected: a killed process must find its queue and seq)
        self.spool_db.commit()
        dirty, self._dirty = self._dirty, set()
        for publisher in dirty:
            publisher.drain()

    def stop(self) -> None:
        """Ask :meth:`run` to finish (thread-safe; also wired to SIGTERM in the CLI)."""
        self.stop_event.set()
        self.loop.wake()

    def _schedule(self) -> list[tuple[float, int, _Slot]]:
        rng = random.Random(self.options.seed)
        start = time.monotonic()
        heap: list[tuple[float, int, _Slot]] = []
        counter = 0
        for device in self.devices:
            for task, pipeline in device.pipelines.items():
                rate = self.options.task_rate_hz.get(task, self.options.rate_hz)
                interval = 1.0 / rate if rate else pipeline.hop_seconds
                first = start + pipeline.window_samples / pipeline.sample_rate
                if rate:
                    first = start + interval
                pipeline.prefetch()
                slot = _Slot(first + rng.uniform(0, interval), device, task, interval)
                heap.append((slot.due, counter, slot))
                counter += 1
        heapq.heapify(heap)
        if not self.options.rate_hz:
            slow = {
                slot.task: slot.interval
                for _, _, slot in heap
                if slot.interval > SLOW_WINDOW_S and slot.task not in self.options.task_rate_hz
            }
            for task, interval in slow.items():
                log.warning(
                    "%s: in real time a window is due every %.0f s (the sensor's pace); pass "
                    "--rate HZ or --task-rate TASK=HZ to simulate faster",
                    task,
                    interval,
                )
        return heap

    def _wait_connected(self, timeout: float | None = None) -> None:
        """Connect the whole fleet before the clock starts (allowing ~50 devices/s at worst)."""
        if timeout is None:
            timeout = 10.0 + len(self.devices) / 50
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline and not self.stop_event.is_set():
            connected = sum(d.publisher.connected for d in self.devices)
            if connected == len(self.devices):
                return
            if connected == 0 and time.monotonic() - started > 3.0:
                break  # the broker is down: measure anyway, the outboxes keep everything
            self.loop.run_once(0.05)
        missing = [d.device_id for d in self.devices if not d.publisher.connected]
        if missing:
            log.warning(
                "%d device(s) not connected to %s yet (e.g. %s); they queue on disk and keep "
                "retrying",
                len(missing),
                self.address.url,
                missing[0],
            )

    def run(self) -> dict[str, Any]:
        """Run until the duration, ``max_windows`` or the sources end; then deliver and report."""
        self._wait_connected()
        cpu_started = time.process_time()
        started = time.monotonic()
        wall0 = time.time()
        deadline = started + self.options.duration_s if self.options.duration_s else float("inf")
        try:
            if self.options.fast:
                self._run_fast(deadline)
            else:
                self._run_paced(deadline, started, wall0)
        except KeyboardInterrupt:
            log.warning("interrupted: delivering what is queued, then stopping")
        produced_s = time.monotonic() - started
        undelivered = self._deliver()
        self.cpu_s = time.process_time() - cpu_started
        return self._report(produced_s, undelivered)

    def _limit_reached(self, device: Device, task: str) -> bool:
        limit = self.options.max_windows
        return limit is not None and device.pipelines[task].windows >= limit

    def _run_paced(self, deadline: float, mono0: float, wall0: float) -> None:
        heap = self._schedule()
        while heap and not self.stop_event.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            due, order, slot = heap[0]
            if due > now:
                self.loop.run_once(min(due, deadline) - now)
                continue
            # every window due by now, of all devices, in one batch per model (run_windows)
            slots: list[tuple[float, int, _Slot]] = []
            while heap and heap[0][0] <= now and len(slots) < MAX_BATCH_WINDOWS:
                slots.append(heapq.heappop(heap))
            requests = []
            for due, _, slot in slots:
                self.max_lag_ms = max(self.max_lag_ms, (now - due) * 1000)
                requests.append((slot.device, slot.task, int((wall0 + (due - mono0)) * 1000)))
            refill: list[TaskPipeline] = []
            for (due, order, slot), produced in zip(slots, run_windows(requests), strict=True):
                if produced and not self._limit_reached(slot.device, slot.task):
                    slot.due = due + slot.interval
                    heapq.heappush(heap, (slot.due, order, slot))
                    refill.append(slot.device.pipelines[slot.task])
            # the windows' predictions go out first, then the sensor buffers refill
            self.loop.run_once(0)
            for pipeline in refill:
                pipeline.prefetch()

    def _run_fast(self, deadline: float) -> None:
        active = [(d, t) for d in self.devices for t in d.pipelines]
        backlog = 2 * max(d.publisher.max_unacked for d in self.devices)
        # Each network pass sends what the batches of the pass queued: one commit, one select,
        # and per device one TCP write carrying several messages (a write costs far more than a
        # message). A source that paces itself (stdin, microphone) blocks in read: there every
        # window goes out at once instead of waiting for the next ones.
        if self.options.source_kind in SELF_PACED_SOURCES:
            rounds = 1
        else:
            rounds = max(FAST_MIN_ROUNDS, FAST_WINDOWS_PER_PASS // len(active))
        while active and not self.stop_event.is_set() and time.monotonic() < deadline:
            for _ in range(rounds):  # a batch holds one window of every ready (device, task)
                ready = [(d, t) for d, t in active if len(d.publisher.spool) < backlog]
                produced = run_windows([(d, t, None) for d, t in ready])
                finished = {
                    pair
                    for pair, more in zip(ready, produced, strict=True)
                    if not more or self._limit_reached(*pair)
                }
                # back-pressured pairs wait for the broker to catch up; finished ones leave
                active = [pair for pair in active if pair not in finished]
                if not active:
                    break
            self.loop.run_once(0)

    def _deliver(self) -> int:
        """Wait (up to ``drain_timeout_s``) until every queued message is acknowledged."""
        deadline = time.monotonic() + self.options.drain_timeout_s
        while time.monotonic() < deadline:
            remaining = sum(len(d.publisher.spool) for d in self.devices)
            if remaining == 0:
                break
            self.loop.run_once(0.02)
        remaining = sum(len(d.publisher.spool) for d in self.devices)
        if remaining == 0:  # one more round trip, so held messages need no resend next run
            confirm_until = min(deadline, time.monotonic() + 2.0)
            for device in self.devices:
                device.publisher.confirm_held()
            while time.monotonic() < confirm_until and any(d.publisher.held for d in self.devices):
                self.loop.run_once(0.02)
            self.spool_db.commit()
        if remaining:
            log.warning(
                "%d message(s) not acknowledged by %s within %.0f s; they stay in %s and are sent "
                "by the next run with the same --state-dir",
                remaining,
                self.address.url,
                self.options.drain_timeout_s,
                self.spool_db.path,
            )
        return remaining

    def close(self) -> None:
        """Publish ``offline``, disconnect every device and close the outbox file."""
        for device in self.devices:
            device.close()
        self.loop.flush(timeout=5.0)
        self.loop.close()
        self.spool_db.close()

    def _report(self, produced_s: float, undelivered: int) -> dict[str, Any]:
        samples: dict[str, dict[str, Any]] = {}
        for device in self.devices:
            for task, pipeline in device.pipelines.items():
                entry = samples.setdefault(
                    task,
                    {
                        "windows": 0,
                        "invalid": 0,
                        "events": 0,
                        "features": [],
                        "invoke": [],
                        "total": [],
                    },
                )
                entry["windows"] += pipeline.windows
                entry["invalid"] += pipeline.invalid
                entry["events"] += pipeline.events
                for timing in pipeline.timings:
                    if timing.invoke:
                        entry["features"].append(timing.features)
                        entry["invoke"].append(timing.invoke)
                    entry["total"].append(timing.total)
        raw = {
            "broker": self.address.url,
            "devices": len(self.devices),
            "mode": "fast"
            if self.options.fast
            else (f"{self.options.rate_hz:g} Hz" if self.options.rate_hz else "real time"),
            "seconds": round(produced_s, 3),
            "published": {
                "predictions": sum(d.publisher.enqueued["prediction"] for d in self.devices),
                "events": sum(d.publisher.enqueued["event"] for d in self.devices),
                "acknowledged": sum(d.publisher.delivered["message"] for d in self.devices),
                "undelivered": undelivered,
                "dropped_outbox_full": sum(d.publisher.spool.dropped for d in self.devices),
            },
            "reconnects": sum(max(0, d.publisher.connection.connects - 1) for d in self.devices),
            "outbox": {
                "writable": self.spool_db.failure is None,
                "write_failures": self.spool_db.write_failures,
            },
            "max_schedule_lag_ms": None if self.options.fast else round(self.max_lag_ms, 2),
            # CPU time of this process (windows + MQTT), so figures survive a loaded machine
            "cpu_seconds": round(self.cpu_s, 3),
        }
        return finish_report(raw, samples)


def finish_report(raw: dict[str, Any], samples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-task figures (medians and p99 over the pooled per-window timings) and totals."""
    produced_s = raw["seconds"]
    tasks = {}
    for task, entry in samples.items():
        tasks[task] = {
            "windows": entry["windows"],
            "invalid_windows": entry["invalid"],
            "events": entry["events"],
            "windows_per_s": round(entry["windows"] / produced_s, 2) if produced_s else None,
            "median_ms": {
                "features": _median(entry["features"]),
                "invoke": _median(entry["invoke"]),
                "total": _median(entry["total"]),
            },
            "p99_ms": {"total": _p99(entry["total"])},
        }
    windows = sum(t["windows"] for t in tasks.values())
    cpu = raw.get("cpu_seconds")
    return {
        **raw,
        "tasks": sorted(tasks),
        "windows": windows,
        "inferences_per_s": round(windows / produced_s, 1) if produced_s else None,
        "inferences_per_cpu_s": round(windows / cpu, 1) if cpu else None,
        "per_task": tasks,
        "_samples": samples,
    }


def _device_credentials(credentials: Credentials, device_id: str) -> Credentials:
    """Per-device user name/password: ``{device}`` in either is replaced by the device id."""
    if "{device}" not in f"{credentials.username}{credentials.password}":
        return credentials
    return dataclasses.replace(
        credentials,
        username=(credentials.username or "").replace("{device}", device_id) or None,
        password=(credentials.password or "").replace("{device}", device_id) or None,
    )


def run_fleet(
    options: FleetOptions,
    source_factory: SourceFactory | None = None,
    model_dir: Path | None = None,
    *,
    keep_samples: bool = False,
) -> dict[str, Any]:
    """Build, run and close a fleet; SIGTERM stops it gracefully (delivers, says offline)."""
    fleet = Fleet(options, source_factory, model_dir)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: fleet.stop())
    try:
        report = fleet.run()
    finally:
        fleet.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not keep_samples:
        report.pop("_samples", None)
    return report


def _run_shard(options: FleetOptions, source_factory: SourceFactory | None) -> dict[str, Any]:
    return run_fleet(options, source_factory, keep_samples=True)


def run_sharded(
    options: FleetOptions, processes: int, source_factory: SourceFactory | None = None
) -> dict[str, Any]:
    """Split the devices across ``processes`` worker processes (one network loop each).

    Each shard has its own outbox file (``<spool_name>-<shard>.sqlite``); device ids and seeds are
    the same as in a single-process run. ``source_factory`` must be picklable (module level).
    """
    processes = max(1, min(processes, options.devices))
    if processes == 1:
        return run_fleet(options, source_factory)
    shards = []
    start = 0
    for shard in range(processes):
        count = options.devices // processes + (1 if shard < options.devices % processes else 0)
        ids = list(options.device_ids[start : start + count]) if options.device_ids else None
        shards.append(
            dataclasses.replace(
                options,
                devices=count,
                device_ids=ids,
                index_offset=options.index_offset + start,
                spool_name=f"{options.spool_name}-{shard}",
            )
        )
        start += count
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        reports = pool.starmap(_run_shard, [(shard, source_factory) for shard in shards])
    samples: dict[str, dict[str, Any]] = {}
    for report in reports:
        for task, entry in report["_samples"].items():
            merged = samples.setdefault(
                task,
                {
                    "windows": 0,
                    "invalid": 0,
                    "events": 0,
                    "features": [],
                    "invoke": [],
                    "total": [],
                },
            )
            for key, value in entry.items():
                merged[key] += value
    raw = {
        "broker": reports[0]["broker"],
        "devices": sum(r["devices"] for r in reports),
        "processes": processes,
        "mode": reports[0]["mode"],
        "seconds": max(r["seconds"] for r in reports),
        "published": {
            key: sum(r["published"][key] for r in reports) for key in reports[0]["published"]
        },
        "reconnects": sum(r["reconnects"] for r in reports),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in reports), 3),
        "max_schedule_lag_ms": None
        if options.fast
        else max(r["max_schedule_lag_ms"] for r in reports),
    }
    report = finish_report(raw, samples)
    report.pop("_samples")
    return report
