"""A device's MQTT side: its session, Last Will, status, outbox → broker, retained model identity.

Every prediction and event goes through the device's :class:`~device_sim.mqtt.spool.Spool` and is
deleted from it only when the broker has it (QoS 1: PUBACK; QoS 0: written to the socket). While the
broker is unreachable the outbox grows (bounded) and is sent in order on reconnect; paho itself
re-sends what was in flight when the connection dropped.

mosquitto acknowledges a QoS 1 message before its persistence file holds it, so a broker crash can
lose what it had just acknowledged. The publisher therefore keeps each acknowledged QoS 1 message
*in the outbox* (held, :meth:`Spool.ack` with ``hold``) until a later round trip proves the broker
saved it, and sends the held ones again after every reconnect (and after a device restart);
subscribers drop the copies by (device, task, seq). The proof: mosquitto saves its database at the
end of the main-loop pass that acknowledged a message (``autosave_on_changes`` with an interval of
1, as ``tinyfleet broker --persistence`` configures it), so the PUBACK of any message we sent
*after* receiving an acknowledgement arrives only after that save. See docs/reliability.md.

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
HOLD_CAP = 5000  # held messages per device; beyond this the oldest are released (and logged)


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
        hold_until_persisted: bool = True,
    ) -> None:
        if prediction_qos not in (0, 1) or event_qos not in (0, 1):
            raise ValueError("QoS must be 0 or 1")
        self.device_id = topics.check_id(device_id)
        self.spool = spool
        self.prediction_qos = prediction_qos
        self.event_qos = event_qos
        self.max_unacked = max_unacked
        self.hold_until_persisted = hold_until_persisted
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
        # paho mid → (outbox row or None for a probe, acknowledgements received before it was sent)
        self._inflight: dict[int, tuple[SpooledMessage | None, int]] = {}
        self._acks = 0  # acknowledgements of held messages so far (numbers them)
        self._held: deque[tuple[int, SpooledMessage]] = deque()  # (ack number, row), oldest first
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

    def report_outbox(self, failure: str | None) -> None:
        """Publish (retained) whether the outbox can be written: an operator must learn that a
        device's disk is full before its memory fills too."""
        now_ms = int(time.time() * 1000)
        message = {
            "schema": SCHEMA_VERSION,
            "device": self.device_id,
            "outbox": "ok" if failure is None else "unwritable",
            "error": failure,
            "unsaved": len(self.spool.unsaved),
            "ts": iso_utc(now_ms),
            "ts_ms": now_ms,
        }
        payload = json.dumps(message, separators=(",", ":")).encode()
        self.set_retained(topics.health_topic(self.device_id), payload)

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
            self._resend_held(connection)
        self._mark()
        self.drain()

    def _resend_held(self, connection: Connection) -> None:
        """After a reconnect: send again what the broker acknowledged but may not have saved."""
        with self._lock:
            held, self._held = list(self._held), deque()
            for _, message in held:
                mid = connection.publish(
                    message.topic, message.payload, message.qos, message.retain, self._properties
                )
                if mid is None:  # dropped again: keep the rest for the next reconnect
                    self._held.extend((n, m) for n, m in held if m.id >= message.id)
                    break
                self._inflight[mid] = (message, self._acks)
                self.replayed += 1
        if held:
            log.info("device %s: resent %d held messages", self.device_id, len(held))

    @property
    def held(self) -> int:
        """Acknowledged QoS 1 messages not yet known to be saved by the broker."""
        return len(self._held)

    def confirm_held(self) -> bool:
        """Start a round trip that releases the held messages (e.g. before a clean exit); False
        when not connected. Re-publishes the retained ``online`` status: harmless, and its PUBACK
        is the proof."""
        with self._lock:
            if not self._held:
                return True
            mid = self.connection.publish(
                topics.status_topic(self.device_id), topics.STATUS_ONLINE, 1, True, None
            )
            if mid is None:
                return False
            if mid in self._acked_early:
                self._acked_early.discard(mid)
                self._release_up_to(self._acks)
            else:
                self._inflight[mid] = (None, self._acks)
            return True

    def _on_publish(self, mid: int) -> None:
        with self._lock:
            entry = self._inflight.pop(mid, None)
            if entry is None:
                self._acked_early.add(mid)  # acked before publish() returned its mid to us
                return
        message, acks_before = entry
        self._release_up_to(acks_before)
        if message is not None:
            self._ack(message)

    def _release_up_to(self, ack_number: int) -> None:
        """Everything acknowledged before a now-acknowledged message was sent is saved."""
        with self._lock:
            released = []
            while self._held and self._held[0][0] <= ack_number:
                released.append(self._held.popleft()[1].id)
        if released:
            self.spool.release(released)

    def _ack(self, message: SpooledMessage) -> None:
        hold = message.qos > 0 and self.hold_until_persisted
        if hold:
            with self._lock:
                self._acks += 1
                self._held.append((self._acks, message))
                if len(self._held) > HOLD_CAP:
                    self.spool.release([self._held.popleft()[1].id])
                    log.warning("device %s: more than %d held messages", self.device_id, HOLD_CAP)
        self.spool.ack(message.id, hold=hold)
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
                    self._release_up_to(self._acks)
                    self._ack(row)
                else:
                    self._inflight[mid] = (row, self._acks)
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
