"""Receive a fleet's predictions: validate, deduplicate by (device, task, seq), count gaps, store.

* :class:`Subscriber` — what ``tinyfleet subscribe`` runs: per-device statistics (rate, last
  label, latency = receipt − window end, gaps and duplicates found by ``seq``), optional SQLite
  storage (:class:`~ops.store.PredictionStore`), MQTT v5 shared subscriptions
  (``$share/GROUP/...``) so several subscriber processes split one fleet's load.
* :func:`iter_predictions` — the small API for users' scripts::

      for p in iter_predictions("mqtt://127.0.0.1:1883", timeout=10):
          print(p.device, p.task, p.seq, p.fields)

Identity comes from the topic, which the broker's ACL authenticated (``tinyfleet/<device>/<task>/
prediction``): a body whose ``device``/``task`` disagree is counted (``identity_mismatch``) and
dropped, and all per-device state is keyed by the topic, so one account can only ever create
state for its own device id, at most ``max_tasks_per_device`` trackers of it. Malformed messages
are counted, logged (rate-limited) and skipped: one broken device must not stop a dashboard. With a ``client_id`` the session is persistent (the broker queues QoS 1 predictions
while the subscriber is away); without one it is clean.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from device_sim.errors import ConfigError
from device_sim.mqtt import topics
from device_sim.mqtt.client import Connection, Credentials, NetworkLoop, parse_broker_url
from device_sim.mqtt.payload import IdentityError, PayloadError, Prediction, receive_prediction
from ops.store import PredictionStore

log = logging.getLogger(__name__)

LABEL_FIELDS = ("label", "band", "alarm", "anomaly")  # what "last label" shows, first found
MAX_OUT_OF_ORDER = 100_000  # a gap this old is given up on, so memory stays bounded
# Bounds on per-device state (~2 KB per device): a fleet larger than MAX_DEVICES needs a larger
# limit or several subscribers (--share); beyond it new devices are counted as over_limit.
MAX_DEVICES = 100_000
MAX_TASKS_PER_DEVICE = 16  # a device runs a few micromodels, not thousands


class SeqTracker:
    """Which seqs of one (device, task) arrived: dedup, and gaps (missing numbers so far).

    Memory is O(out-of-order window): everything up to ``contiguous`` arrived; ``above`` holds
    seqs beyond the first hole. Seqs below the first one seen (older outbox contents arriving
    late) are tracked in ``below``.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        self.contiguous = -1
        self.above: set[int] = set()
        self.below: set[int] = set()
        self.highest = -1
        self.given_up = 0

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was seen before (a duplicate)."""
        if self.first is None:
            self.first = seq
            self.contiguous = seq
            self.highest = seq
            return True
        if seq < self.first:
            if seq in self.below:
                return False
            self.below.add(seq)
            return True
        if seq <= self.contiguous or seq in self.above:
            return False
        self.highest = max(self.highest, seq)
        if seq == self.contiguous + 1:
            self.contiguous = seq
            while self.contiguous + 1 in self.above:
                self.contiguous += 1
                self.above.discard(self.contiguous)
        else:
            self.above.add(seq)
            if len(self.above) > MAX_OUT_OF_ORDER:
                lowest = min(self.above)
                self.given_up += lowest - self.contiguous - 1
                self.contiguous = lowest
                self.above.discard(lowest)
        return True

    @property
    def missing(self) -> int:
        """Seqs between the first and the highest seen that have not arrived (yet)."""
        if self.first is None:
            return 0
        return self.highest - self.contiguous - len(self.above) + self.given_up


@dataclass
class DeviceStats:
    received: int = 0
    duplicates: int = 0
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    last_label: Any = None
    last_task: str = ""
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200))  # recent
    trackers: dict[str, SeqTracker] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.trackers.values())

    def rate_per_s(self) -> float:
        span = self.last_receipt - self.first_receipt
        return (self.received - 1) / span if self.received > 1 and span > 0 else 0.0


def _label(prediction: Prediction) -> Any:
    for name in LABEL_FIELDS:
        if name in prediction.fields:
            return prediction.fields[name]
    return None if prediction.valid else f"invalid: {prediction.reason}"


PredictionCallback = Callable[[Prediction, bytes, int], None]


class Subscriber:
    """Subscribe to ``topic_filter`` (all predictions by default) and account for every message.

    ``on_prediction(prediction, payload, received_ms)`` is called once per new (device, task,
    seq), on the network thread.
    """

    def __init__(
        self,
        broker_url: str,
        *,
        credentials: Credentials | None = None,
        topic_filter: str = topics.ALL_PREDICTIONS,
        share: str | None = None,
        client_id: str | None = None,
        session_expiry_s: int = 3600,
        store: PredictionStore | None = None,
        on_prediction: PredictionCallback | None = None,
        keep_latencies: bool = False,
        max_devices: int = MAX_DEVICES,
        max_tasks_per_device: int = MAX_TASKS_PER_DEVICE,
    ) -> None:
        address = parse_broker_url(broker_url)
        self.topic_filter = topics.shared(share, topic_filter) if share else topic_filter
        self.store = store
        self.on_prediction = on_prediction
        self.stats: dict[str, DeviceStats] = {}
        self.received = 0
        self.unique = 0
        self.duplicates = 0
        self.malformed = 0
        self.identity_mismatch = 0  # body's device/task disagree with the topic: dropped
        self.over_limit = 0  # a new device or task beyond max_devices / max_tasks_per_device
        self.max_devices = max_devices
        self.max_tasks_per_device = max_tasks_per_device
        self.all_latencies_ms: list[float] | None = [] if keep_latencies else None
        self.loop = NetworkLoop()
        persistent = client_id is not None
        self.connection = Connection(
            client_id or f"tinyfleet-sub-{id(self):x}",
            address,
            credentials or Credentials(),
            name=f"subscriber {client_id or ''}".strip(),
            clean=not persistent,
            session_expiry_s=session_expiry_s if persistent else 0,
        )
        self.connection.subscribe(self.topic_filter, self._on_message, 1)
        self.connection.on_connected.append(self._check_share)
        self.loop.add(self.connection)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_malformed_log = 0.0

    def _check_share(self, connection: Connection, session_present: bool) -> None:
        if self.topic_filter.startswith("$share/") and not connection.is_v5:
            log.error(
                "shared subscriptions need MQTT v5 but the broker speaks 3.1.1: every subscriber "
                "in the group will get every message (run mosquitto >= 1.6)"
            )

    def _log_dropped(self, what: str, count: int, topic: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_malformed_log > 5 or count <= 3:
            self._last_malformed_log = now
            log.warning("skipped a %s message on %r (%d so far): %s", what, topic, count, exc)

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        received_ms = int(time.time() * 1000)
        self.received += 1
        try:
            received = receive_prediction(message.topic, message.payload, received_ms)
        except IdentityError as exc:
            self.identity_mismatch += 1
            self._log_dropped("spoofed", self.identity_mismatch, message.topic, exc)
            return
        except PayloadError as exc:
            self.malformed += 1
            self._log_dropped("malformed", self.malformed, message.topic, exc)
            return
        prediction = received.prediction  # device and task equal the topic's levels
        stats = self.stats.get(prediction.device)
        if stats is None:
            if len(self.stats) >= self.max_devices:
                self._over_limit(f"more than {self.max_devices} devices", message.topic)
                return
            stats = self.stats[prediction.device] = DeviceStats()
        tracker = stats.trackers.get(prediction.task)
        if tracker is None:
            if len(stats.trackers) >= self.max_tasks_per_device:
                self._over_limit(f"more than {self.max_tasks_per_device} tasks", message.topic)
                return
            tracker = stats.trackers[prediction.task] = SeqTracker()
        if not tracker.add(prediction.seq):
            stats.duplicates += 1
            self.duplicates += 1
            return
        self.unique += 1
        now = time.monotonic()
        if not stats.received:
            stats.first_receipt = now
        stats.received += 1
        stats.last_receipt = now
        stats.last_label = _label(prediction)
        stats.last_task = prediction.task
        latency = received_ms - prediction.window_end_ms
        stats.latencies_ms.append(latency)
        if self.all_latencies_ms is not None:
            self.all_latencies_ms.append(latency)
        if self.store is not None:
            self.store.add(received)
        if self.on_prediction is not None:
            self.on_prediction(prediction, message.payload, received_ms)

    def _over_limit(self, what: str, topic: str) -> None:
        self.over_limit += 1
        if self.over_limit <= 3 or self.over_limit % 1000 == 0:
            log.error(
                "dropped a prediction on %r (%d so far): %s; raise the limit or split the fleet "
                "across subscribers (--share)",
                topic,
                self.over_limit,
                what,
            )

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def wait_connected(self, timeout: float = 10.0) -> Subscriber:
        """Block until subscribed (SUBACK is not awaited; the broker orders it before messages)."""
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            if self._thread is None:
                self.loop.run_once(0.05)
            else:
                time.sleep(0.01)
        if not self.connected:
            raise ConfigError(
                f"the subscriber could not connect to {self.connection.address.url} within "
                f"{timeout:g} s: is the broker running (`tinyfleet broker`)?"
            )
        if self._thread is None:
            self.loop.flush(timeout=1.0)
        else:
            time.sleep(0.1)
        return self

    def run(
        self,
        duration_s: float | None = None,
        count: int | None = None,
        tick: Callable[[], None] | None = None,
        tick_interval_s: float = 1.0,
    ) -> None:
        """Receive on this thread until ``duration_s``, ``count`` unique predictions or stop()."""
        deadline = time.monotonic() + duration_s if duration_s else float("inf")
        next_tick = time.monotonic() + tick_interval_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if count is not None and self.unique >= count:
                break
            timeout = 0.05
            due_in = self.store.commit_due_in() if self.store is not None else None
            if due_in is not None:
                if due_in <= 0:  # rows wait for no further message: stored within the interval
                    self.store.commit()
                else:
                    timeout = min(timeout, due_in)
            self.loop.run_once(timeout)
            if tick is not None and time.monotonic() >= next_tick:
                next_tick += tick_interval_s
                tick()
        if self.store is not None:
            self.store.commit()

    def start(self) -> Subscriber:
        """Receive on a background thread (for tests and :func:`iter_predictions`)."""
        self._thread = threading.Thread(target=self.run, name="tinyfleet-subscriber", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.loop.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop, disconnect (the broker keeps a persistent session) and close the store."""
        self.stop()
        self.connection.disconnect()
        self.loop.flush(timeout=1.0)
        self.loop.close()
        if self.store is not None:
            self.store.close()

    def missing(self) -> int:
        return sum(s.missing for s in self.stats.values())

    def summary(self) -> dict[str, Any]:
        """Totals and per-device figures (latency in ms: receipt − window end)."""
        devices = {}
        for device, stats in sorted(self.stats.items()):
            latencies = sorted(stats.latencies_ms)
            devices[device] = {
                "received": stats.received,
                "rate_per_s": round(stats.rate_per_s(), 2),
                "last": stats.last_label,
                "latency_ms_median": statistics.median(latencies) if latencies else None,
                "missing": stats.missing,
                "duplicates": stats.duplicates,
            }
        return {
            "messages": self.received,
            "predictions": self.unique,
            "duplicates": self.duplicates,
            "missing": self.missing(),
            "malformed": self.malformed,
            "identity_mismatch": self.identity_mismatch,
            "over_limit": self.over_limit,
            "devices": devices,
        }


def iter_predictions(
    broker_url: str,
    *,
    topic_filter: str = topics.ALL_PREDICTIONS,
    share: str | None = None,
    credentials: Credentials | None = None,
    client_id: str | None = None,
    timeout: float | None = 10.0,
    count: int | None = None,
) -> Iterator[Prediction]:
    """Yield each new prediction (deduplicated) as it arrives.

    Stops after ``count`` predictions, or when none arrived for ``timeout`` seconds (None: never).
    Malformed messages are skipped (and logged).
    """
    inbox: queue.Queue[Prediction] = queue.Queue()
    subscriber = Subscriber(
        broker_url,
        credentials=credentials,
        topic_filter=topic_filter,
        share=share,
        client_id=client_id,
        on_prediction=lambda prediction, payload, received_ms: inbox.put(prediction),
    )
    subscriber.start()
    yielded = 0
    try:
        while count is None or yielded < count:
            try:
                prediction = inbox.get(timeout=timeout)
            except queue.Empty:
                return
            yielded += 1
            yield prediction
    finally:
        subscriber.close()
