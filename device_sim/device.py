"""The device runtime: sensor source → front end → interpreter → task runtime → publisher.

A :class:`Device` hosts one or more micromodels (a multi-sensor node: microphone, accelerometer and
gas sensors on one board), each a :class:`TaskPipeline` reading its own source. A scheduler (see
:mod:`device_sim.fleet`) decides *when* a pipeline's next window is due; :meth:`Device.run_window`
does the work of one window and queues its prediction (and event) with the device's publisher.

Hooks for the ops tools: :meth:`Device.request_model_swap` (rollout; applied between windows, then
the new model identity is published retained on ``tinyfleet/<device>/<task>/model``),
:meth:`Device.add_message_handler` (subscribed on every (re)connect) and ``ha_discovery``
(Home Assistant MQTT discovery on connect and whenever ``homeassistant/status`` says ``online``).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import ConfigError
from device_sim.features import frontend_from_dict
from device_sim.features.base import FrontEnd
from device_sim.interpreter import MAX_BATCH, Int8Model
from device_sim.mqtt import topics
from device_sim.mqtt.payload import encode_event, encode_prediction
from device_sim.mqtt.publisher import Publisher
from device_sim.sources import Source, open_source
from device_sim.tasks import TaskRuntime, runtime_for

log = logging.getLogger(__name__)

HA_STATUS_TOPIC = "homeassistant/status"


class ModelCache:
    """Front ends and interpreters shared by the simulated devices of one process, by model hash.

    Real devices each own an interpreter; in a simulation the devices of one process run their
    windows one after another on one thread, so sharing the (stateless between invokes)
    interpreter and front end of the same model saves ~1 MB per device without changing results.
    Task runtimes hold per-device state (smoothing, alarm hysteresis) and are never shared.
    """

    def __init__(self, shared: bool = True) -> None:
        self.shared = shared
        self._items: dict[str, tuple[FrontEnd, Int8Model]] = {}

    def get(self, bundle: Bundle) -> tuple[FrontEnd, Int8Model]:
        key = bundle.model_sha256 + repr(sorted(bundle.feature_config.items()))
        if self.shared and key in self._items:
            return self._items[key]
        item = (frontend_from_dict(bundle.feature_config), Int8Model.from_bundle(bundle))
        if self.shared:
            self._items[key] = item
        return item


@dataclass
class WindowTiming:
    """Where one window's time went, in ms; ``total`` = validity check + front end + invoke +
    task logic (what the device spends on a window before publishing)."""

    features: float = 0.0
    invoke: float = 0.0
    total: float = 0.0


@dataclass
class TaskPipeline:
    """One micromodel on a device and the sensor stream it reads.

    ``window_samples``/``hop_samples`` are in source rows (audio samples, accelerometer frames, gas
    sensor rows); ``sample_rate`` in rows per second.
    """

    bundle: Bundle
    frontend: FrontEnd
    model: Int8Model
    runtime: TaskRuntime
    source: Source
    windows: int = 0
    invalid: int = 0
    events: int = 0
    timings: list[WindowTiming] = field(default_factory=list)
    _buffer: np.ndarray | None = None
    _next_chunk: np.ndarray | None = None
    _exhausted: bool = False

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def window_samples(self) -> int:
        return int(self.frontend.window_samples)

    @property
    def hop_samples(self) -> int:
        return int(getattr(self.runtime, "hop_samples", 0) or self.window_samples)

    @property
    def sample_rate(self) -> float:
        return float(self.source.sample_rate)

    @property
    def hop_seconds(self) -> float:
        return self.hop_samples / self.sample_rate

    def _chunk_size(self) -> int:
        return self.window_samples if self._buffer is None else self.hop_samples

    def prefetch(self, now: bool = False) -> None:
        """Read the samples of the next window now (as a sensor's DMA fills a buffer while the
        CPU is busy), so the simulator's rendering time is not counted as device latency.

        A source whose ``reads_from_memory`` is true (a shared recording) is read only when the
        window is due (``now``): its read costs microseconds, and a chunk held per device between
        windows would cost a big fleet tens of MB."""
        if not now and getattr(self.source, "reads_from_memory", False):
            return
        if self._next_chunk is None and not self._exhausted:
            chunk = self.source.read(self._chunk_size())
            if chunk is None or len(chunk) < self._chunk_size():
                self._exhausted = True
            else:
                self._next_chunk = np.asarray(chunk)

    def next_window(self) -> np.ndarray | None:
        """The next window (one hop further); None when the source is exhausted."""
        self.prefetch(now=True)
        chunk, self._next_chunk = self._next_chunk, None
        if chunk is None:
            return None
        if self._buffer is None or len(chunk) >= self.window_samples:
            self._buffer = chunk[-self.window_samples :]
        else:
            self._buffer = np.concatenate([self._buffer[len(chunk) :], chunk])
        return self._buffer

    def swap(self, bundle: Bundle, cache: ModelCache) -> None:
        """Run ``bundle`` from the next window on (the window buffer restarts if its size changed)."""
        frontend, model = cache.get(bundle)
        runtime = runtime_for(bundle)
        if frontend.window_samples != self.frontend.window_samples:
            self._buffer = None
            self._next_chunk = None
        self.bundle, self.frontend, self.model, self.runtime = bundle, frontend, model, runtime


def build_pipeline(
    bundle: Bundle,
    *,
    cache: ModelCache,
    source: Source | None = None,
    source_kind: str = "sim",
    path: Path | None = None,
    seed: int = 0,
    realtime: bool = False,
) -> TaskPipeline:
    """Front end + interpreter from the bundle, the task runtime, and a source (opened if None)."""
    frontend, model = cache.get(bundle)
    runtime = runtime_for(bundle)
    if source is None:
        source = open_source(bundle, source_kind, path=path, seed=seed, realtime=realtime)
    return TaskPipeline(bundle, frontend, model, runtime, source)


MessageHandler = Callable[[str, bytes], None]


class Device:
    """One (simulated or real) device: its pipelines, its publisher, its hooks."""

    def __init__(
        self,
        device_id: str,
        pipelines: Sequence[TaskPipeline],
        publisher: Publisher,
        *,
        cache: ModelCache | None = None,
        ha_discovery: bool = False,
        keep_timings: int = 2000,
    ) -> None:
        self.device_id = topics.check_id(device_id)
        tasks = [p.task for p in pipelines]
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"device {device_id} got two bundles for the same task: {tasks}")
        self.pipelines = {p.task: p for p in pipelines}
        self.publisher = publisher
        self.cache = cache or ModelCache()
        self.keep_timings = keep_timings
        self._swap_lock = threading.Lock()
        self._pending_swaps: dict[str, Bundle] = {}
        for pipeline in pipelines:
            self._publish_identity(pipeline)
        if ha_discovery:
            self._enable_ha_discovery()

    # -- hooks for rollout / ops --------------------------------------------------------------------
    def request_model_swap(self, task: str, bundle: Bundle) -> None:
        """Ask the device to run ``bundle`` for ``task`` from its next window on (thread-safe)."""
        if task not in self.pipelines:
            raise ConfigError(
                f"device {self.device_id} does not run task {task!r} (it runs "
                f"{', '.join(self.pipelines)}); roll the model out to a device that does"
            )
        if bundle.task != task:
            raise ConfigError(f"bundle {bundle.directory} is a {bundle.task} model, not {task}")
        with self._swap_lock:
            self._pending_swaps[task] = bundle

    def add_message_handler(self, topic_filter: str, callback: MessageHandler) -> None:
        """Call ``callback(topic, payload)`` for messages on ``topic_filter`` (QoS 1, resubscribed
        after every reconnect; runs on the network thread — keep it short)."""
        self.publisher.connection.subscribe(
            topic_filter, lambda message: callback(message.topic, message.payload), 1
        )

    def _apply_swaps(self) -> None:
        with self._swap_lock:
            swaps, self._pending_swaps = self._pending_swaps, {}
        for task, bundle in swaps.items():
            pipeline = self.pipelines[task]
            old = pipeline.bundle.identity()
            pipeline.swap(bundle, self.cache)
            log.info(
                "device %s: %s model %s → %s", self.device_id, task, old["version"], bundle.version
            )
            self._publish_identity(pipeline)

    def _publish_identity(self, pipeline: TaskPipeline) -> None:
        payload = self.publisher.model_identity_payload(pipeline.task, pipeline.bundle.identity())
        self.publisher.set_retained(topics.model_topic(self.device_id, pipeline.task), payload)

    def _enable_ha_discovery(self) -> None:
        try:
            ha = importlib.import_module("device_sim.mqtt.ha_discovery")
        except ModuleNotFoundError as exc:
            if exc.name != "device_sim.mqtt.ha_discovery":
                raise
            log.warning("Home Assistant discovery is not available in this install; skipped")
            return

        def announce(*_: Any) -> None:
            bundles = [p.bundle for p in self.pipelines.values()]
            for message in ha.discovery_messages(self.device_id, bundles):
                self.publisher.publish_now(
                    message.topic, message.payload, message.qos, message.retain
                )

        def on_ha_status(message) -> None:
            if ha.is_ha_online(message.payload):
                announce()

        self.publisher.connection.on_connected.append(announce)
        self.publisher.connection.subscribe(HA_STATUS_TOPIC, on_ha_status, 1)

    # -- the work of one window -----------------------------------------------------------------
    def run_window(self, task: str, window_end_ms: int | None = None) -> bool:
        """Read, infer and queue one window of ``task``; False when its source is exhausted.

        ``window_end_ms`` (epoch ms) is when the window's last sample arrived; the scheduler passes
        the due time in real-time mode, otherwise the wall clock at read time is used. This is
        :func:`run_windows` with a batch of one: a real device and a simulated fleet run the same
        code.
        """
        return run_windows([(self, task, window_end_ms)])[0]

    def read_window(self, task: str, window_end_ms: int | None = None) -> PendingWindow | None:
        """Step 1 of a window: apply a pending model swap, read the samples, check them."""
        if self._pending_swaps:
            self._apply_swaps()
        pipeline = self.pipelines[task]
        samples = pipeline.next_window()
        if samples is None:
            return None
        started = time.perf_counter()
        if window_end_ms is None:
            window_end_ms = int(time.time() * 1000)
        reason = pipeline.runtime.check_window(samples)
        checked = (time.perf_counter() - started) * 1000
        return PendingWindow(self, pipeline, samples, window_end_ms, reason, checked)

    def finish_window(
        self,
        window: PendingWindow,
        output: np.ndarray | None,
        features: np.ndarray | None,
        timing: WindowTiming,
    ) -> None:
        """Step 3 of a window: task logic on the model output, then the prediction (and event)
        into the outbox. ``timing`` holds this window's share of the batch's front end and invoke.
        """
        started = time.perf_counter()
        pipeline, task = window.pipeline, window.pipeline.task
        reason = window.reason
        event = None
        if reason is None:
            result = pipeline.runtime.process(output, features)
            fields, event = dict(result.fields), result.event
        else:
            fields = dict(pipeline.runtime.invalid_result(reason).fields)
        # Task runtimes may state validity themselves (e.g. non-finite features after the front
        # end); the envelope carries it, so it is not repeated among the task's fields.
        valid = bool(fields.pop("valid", reason is None)) and reason is None
        reason = fields.pop("reason", reason)
        if not valid:
            pipeline.invalid += 1
        seq = self.publisher.spool.peek_seq(task)
        identity = pipeline.bundle.identity()
        timing.total = (
            window.check_ms
            + timing.features
            + timing.invoke
            + (time.perf_counter() - started) * 1000
        )
        window_ms = round(pipeline.window_samples / pipeline.sample_rate * 1000)
        payload = encode_prediction(
            device=self.device_id,
            task=task,
            model=identity,
            seq=seq,
            window_start_ms=window.end_ms - window_ms,
            window_end_ms=window.end_ms,
            fields=fields,
            valid=valid,
            reason=None if valid else str(reason or "invalid window"),
            timing_ms={"features": timing.features, "invoke": timing.invoke, "total": timing.total},
        )
        self.publisher.enqueue_prediction(task, seq, payload)
        if event is not None:
            pipeline.events += 1
            self.publisher.enqueue_event(
                task,
                encode_event(
                    device=self.device_id, task=task, model=identity, seq=seq, event=event
                ),
            )
        pipeline.windows += 1
        if len(pipeline.timings) < self.keep_timings:
            pipeline.timings.append(timing)
        else:
            pipeline.timings[pipeline.windows % self.keep_timings] = timing

    def close(self) -> None:
        for pipeline in self.pipelines.values():
            pipeline.source.close()
        self.publisher.close()


@dataclass
class PendingWindow:
    """One device's window between reading (:meth:`Device.read_window`) and publishing
    (:meth:`Device.finish_window`); ``reason`` says why it must not be inferred (None: fine)."""

    device: Device
    pipeline: TaskPipeline
    samples: np.ndarray
    end_ms: int
    reason: str | None
    check_ms: float


def run_windows(requests: Sequence[tuple[Device, str, int | None]]) -> list[bool]:
    """One window for each ``(device, task, window_end_ms)``; False where the source is exhausted.

    Why a batch: a simulated fleet's devices share their models' front end and interpreter
    (:class:`ModelCache`), and per-call overhead, not arithmetic, dominates a small model. So the
    windows of all devices running the same front end and model go through **one** vectorised
    front-end call and one batched invoke; reading, checking, task logic, ``seq`` and the payload
    stay per device, in request order. Every row of a batch computes exactly what a batch of one
    computes (tested byte for byte on the payloads), and a real device runs this with one request.
    The timing fields give each window an equal share of its batch's front end and invoke (ms).
    """
    done = [False] * len(requests)
    pending: list[PendingWindow] = []
    for index, (device, task, window_end_ms) in enumerate(requests):
        window = device.read_window(task, window_end_ms)
        if window is not None:
            done[index] = True
            pending.append(window)
    groups: dict[tuple[int, int], list[PendingWindow]] = {}
    for window in pending:
        key = (id(window.pipeline.frontend), id(window.pipeline.model))
        groups.setdefault(key, []).append(window)
    results: dict[int, tuple[np.ndarray | None, np.ndarray | None, WindowTiming]] = {}
    for windows in groups.values():
        valid = [w for w in windows if w.reason is None]
        # chunks bound the front end's temporaries (a vibration window is ~100 KB in float64,
        # several copies of it per step), which the allocator would keep for good
        for start in range(0, len(valid), MAX_BATCH):
            chunk = valid[start : start + MAX_BATCH]
            pipeline = chunk[0].pipeline
            started = time.perf_counter()
            features = pipeline.frontend.batch(np.stack([w.samples for w in chunk]))
            after_features = time.perf_counter()
            outputs = pipeline.model.predict_batch(features)
            after_invoke = time.perf_counter()
            timing = WindowTiming(
                features=(after_features - started) * 1000 / len(chunk),
                invoke=(after_invoke - after_features) * 1000 / len(chunk),
            )
            for row, window in enumerate(chunk):
                results[id(window)] = (outputs[row], features[row], dataclasses.replace(timing))
    for window in pending:
        output, features, timing = results.get(id(window), (None, None, WindowTiming()))
        window.device.finish_window(window, output, features, timing)
    return done
