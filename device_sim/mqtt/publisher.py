"""A device's MQTT side: its session, Last Will, status, outbox → broker, retained model identity.

Every prediction and event goes through the device's :class:`~device_sim.mqtt.spool.Spool` and is
deleted from it only when the broker has it (QoS 1: PUBACK; QoS 0: written to the socket). While the
broker is unreachable the outbox grows (bounded) and is sent in order on reconnect; paho itself
re-sends what was in flight when the connection dropped.

mosquitto acknowledges a QoS 1 message before its persistence file holds it, so a broker crash can
lose what it had just acknowledged. The publisher therefore keeps the QoS 1 messages acknowledged
in the last ``replay_s`` seconds (in memory, bounded) and sends them again after every reconnect;
subscribers drop the copies by (device, task, seq). See docs/reliability.md.

The publisher is driven by a :class:`~device_sim.mqtt.client.NetworkLoop` (one thread for many
devices); :meth:`Publisher.enqueue_prediction` may be called from another thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from device_sim.mqtt import topics
from device_sim.mqtt.client import BrokerAddress, Connection, Credentials, publish_properties
from device_sim.mqtt.payload import CONTENT_TYPE, SCHEMA_VERSION, iso_utc
from device_sim.mqtt.spool import Spool, SpooledMessage

log = logging.getLogger(__name__)

DEFAULT_EXPIRY_S = 24 * 3600  # a prediction older than a day is history, not telemetry
DEFAULT_SESSION_EXPIRY_S = 3600  # the broker keeps a device's session this long while it is away
DEFAULT_REPLAY_S = 3.0  # resend QoS 1 messages acknowledged this long before a disconnect
REPLAY_CAP = 5000  # at most this many messages kept for replay per device


class Publisher:
    """Publishes one device's messages; see the module docstring for the delivery guarantees.

    ``max_unacked`` bounds how many outbox messages are handed to paho at once (memory, and
    fairness between devices sharing one network loop).
    """

    def __init__(
        self,
        device_id: str,
        address: BrokerAddress,
        spool: Spool,
        credentials: Credentials | None = None,
        *,
        prediction_qos: int = 0,
        event_qos: int = 1,
        expiry_s: int = DEFAULT_EXPIRY_S,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        keepalive_s: int = 30,
        max_unacked: int = 500,
        replay_s: float = DEFAULT_REPLAY_S,
    ) -> None:
        if prediction_qos not in (0, 1) or event_qos not in (0, 1):
            raise ValueError("QoS must be 0 or 1")
        self.device_id = topics.check_id(device_id)
        self.spool = spool
        self.prediction_qos = prediction_qos
        self.event_qos = event_qos
        self.max_unacked = max_unacked
        self.replay_s = replay_s
        self.connection = Connection(
            f"tinyfleet-{device_id}",
            address,
            credentials or Credentials(),
            name=f"device {device_id}",
            will=(topics.status_topic(device_id), topics.STATUS_OFFLINE, 1, True),
            clean=False,
            session_expiry_s=session_expiry_s,
            keepalive_s=keepalive_s,
        )
        self.connection.on_connected.append(self._on_connected)
        self.connection.on_publish = self._on_publish
        self._properties = publish_properties(expiry_s, SCHEMA_VERSION, CONTENT_TYPE)
        self._retained_properties = publish_properties(None, SCHEMA_VERSION, CONTENT_TYPE)
        self._lock = threading.RLock()
        self._inflight: dict[int, SpooledMessage] = {}  # paho mid → outbox row
        self._replay: deque[tuple[float, SpooledMessage]] = deque(maxlen=REPLAY_CAP)
        self.replayed = 0
        self._acked_early: set[int] = set()
        self._last_sent_id = 0
        self._has_new = True  # the outbox may hold messages from a previous run
        # called when there may be something to drain (a fleet keeps a set of such publishers)
        self.on_pending: Callable[[Publisher], None] | None = None
        self._retained: dict[str, bytes] = {}
        self.delivered: Counter[str] = Counter()  # acknowledged messages per topic kind
        self.enqueued: Counter[str] = Counter()

    def _mark(self) -> None:
        self._has_new = True
        if self.on_pending is not None:
            self.on_pending(self)

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def enqueue_prediction(self, task: str, seq: int, payload: bytes) -> None:
        """Queue one window's prediction; ``seq`` is recorded as used in the same transaction."""
        self.spool.append(
            topics.prediction_topic(self.device_id, task),
            payload,
            self.prediction_qos,
            seq_task=task,
            seq=seq,
        )
        self.enqueued["prediction"] += 1
        self._mark()

    def enqueue_event(self, task: str, payload: bytes) -> None:
        self.spool.append(topics.event_topic(self.device_id, task), payload, self.event_qos)
        self.enqueued["event"] += 1
        self._mark()

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish a retained QoS 1 message now (if connected) and again after every reconnect."""
        with self._lock:
            self._retained[topic] = payload
        self.connection.publish(topic, payload, 1, True, self._retained_properties)

    def publish_now(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send outside the outbox (discovery configs, replies): dropped while disconnected."""
        self.connection.publish(topic, payload, qos, retain, self._retained_properties)

    def model_identity_payload(self, task: str, identity: dict[str, str]) -> bytes:
        now_ms = int(time.time() * 1000)
        message: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "device": self.device_id,
            "task": task,
            "model": identity,
            "ts": iso_utc(now_ms),
            "ts_ms": now_ms,
        }
        return json.dumps(message, separators=(",", ":")).encode()

    def _on_connected(self, connection: Connection, session_present: bool) -> None:
        connection.publish(topics.status_topic(self.device_id), topics.STATUS_ONLINE, 1, True, None)
        with self._lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            connection.publish(topic, payload, 1, True, self._retained_properties)
        if connection.connects > 1:
            self._resend_recently_acknowledged(connection)
        self._mark()
        self.drain()

    def _resend_recently_acknowledged(self, connection: Connection) -> None:
        """After a reconnect: send again what the broker acknowledged just before the outage."""
        with self._lock:
            recent = [message for _, message in self._replay]
            self._replay.clear()
        for message in recent:
            connection.publish(
                message.topic, message.payload, message.qos, message.retain, self._properties
            )
        if recent:
            self.replayed += len(recent)
            log.info(
                "device %s: resent %d recently acknowledged messages", self.device_id, len(recent)
            )

    def _on_publish(self, mid: int) -> None:
        with self._lock:
            message = self._inflight.pop(mid, None)
            if message is None:
                self._acked_early.add(mid)  # acked before publish() returned its mid to us
                return
        self._ack(message)

    def _ack(self, message: SpooledMessage) -> None:
        if message.qos > 0 and self.replay_s > 0:
            now = time.monotonic()
            with self._lock:
                while self._replay and self._replay[0][0] < now - self.replay_s:
                    self._replay.popleft()
                self._replay.append((now, message))
        self.spool.ack(message.id)
        self.delivered["message"] += 1
        if len(self._inflight) < self.max_unacked // 2:
            self._mark()

    def drain(self) -> int:
        """Hand outbox messages to paho while connected, oldest first; returns how many."""
        if not self._has_new or not self.connection.connected:
            return 0
        with self._lock:
            budget = self.max_unacked - len(self._inflight)
            if budget <= 0:
                return 0
            self._has_new = False
            rows = self.spool.pending(self._last_sent_id, budget)
            sent = 0
            for row in rows:
                mid = self.connection.publish(
                    row.topic, row.payload, row.qos, row.retain, self._properties
                )
                if mid is None:  # the connection dropped meanwhile
                    self._mark()
                    break
                self._last_sent_id = row.id
                sent += 1
                if mid in self._acked_early:
                    self._acked_early.discard(mid)
                    self._ack(row)
                else:
                    self._inflight[mid] = row
            if len(rows) == budget:
                self._mark()
            return sent

    @property
    def unsent(self) -> int:
        """Messages still in the outbox (queued or awaiting the broker's acknowledgement)."""
        return len(self.spool)

    def close(self) -> None:
        """Publish ``offline`` (retained) and disconnect; the Will is not sent on a clean goodbye."""
        self.connection.publish(
            topics.status_topic(self.device_id), topics.STATUS_OFFLINE, 1, True, None
        )
        self.connection.disconnect()
