"""Helpers for the ops tests (security, rollout, Home Assistant discovery, scale-out).

Every test starts its own mosquitto via ``ops.broker.MosquittoBroker`` on a free
loopback port; clients here are plain paho clients so that the broker's behaviour, not our client
code, is what is tested.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_sim.bundle import Bundle, QuantizedTensor, write_bundle
from ops.broker import HOST

AQ_INPUTS = ("T", "RH")
AQ_WINDOW_ROWS = 3
AQ_TARGETS = (("CO", "mg/m³"), ("NO2", "µg/m³"), ("C6H6", "µg/m³"))


@functools.lru_cache(maxsize=4)
def tiny_model(n_inputs: int = len(AQ_INPUTS) * AQ_WINDOW_ROWS, n_outputs: int = 3, seed: int = 0):
    """A real int8 TFLite model (two dense layers; a few seconds, once per test session)."""
    from bundle_fixtures import tiny_int8_model

    return tiny_int8_model(n_inputs=n_inputs, n_outputs=n_outputs, seed=seed)


def aq_targets() -> list[dict]:
    """Target entries as training/air_quality.py writes them (linear and log decoding keys)."""
    return [
        {
            "key": key,
            "name": f"{key}(GT)",
            "unit": unit,
            "mean": 1.0,
            "std": 1.0,
            "log_mean": 0.5,
            "log_std": 0.5,
            "offset": 0.1,
        }
        for key, unit in AQ_TARGETS
    ]


def air_quality_bundle(
    directory: Path,
    model_bytes: bytes,
    *,
    version: str | None = None,
    name: str = "aq-test",
    release: int | None = None,
) -> Bundle:
    """A complete air_quality bundle around ``model_bytes`` that the device runtime can run."""
    from device_sim.features.air_quality import AirQualityWindowConfig
    from device_sim.interpreter import Int8Model

    model = Int8Model(model_bytes)
    config = AirQualityWindowConfig(
        inputs=AQ_INPUTS,
        transforms=("linear", "linear"),
        mean=(20.0, 50.0),
        std=(5.0, 10.0),
        window_rows=AQ_WINDOW_ROWS,
    )
    return write_bundle(
        directory,
        model_bytes,
        task="air_quality",
        name=name,
        input=model.input_spec,
        output=model.output_spec,
        feature_config=config.to_dict(),
        head={
            "targets": aq_targets(),
        },
        version=version,
        release=release,
    )


def head_only_bundle(
    task: str,
    head: dict,
    directory: Path,
    *,
    feature_config: dict | None = None,
    n_outputs: int = 4,
) -> Bundle:
    """A Bundle object with a given head, for task runtimes and discovery (no model is run)."""
    return Bundle(
        directory=directory,
        task=task,
        name=f"{task}-test",
        version="20260101.000000-abcdef12",
        input=QuantizedTensor((1, 4), "int8", 0.1, 0),
        output=QuantizedTensor((1, n_outputs), "int8", 0.1, 0),
        feature_config=feature_config or {},
        head=head,
        model_sha256="ab" * 32,
    )


class Collector:
    """A paho client that records (topic, payload) of what it receives; thread-safe waits."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()

    def on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def topics(self) -> list[str]:
        with self._cond:
            return [topic for topic, _, _ in self.messages]


def connect(
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    protocol: int = mqtt.MQTTv311,
    client_id: str | None = None,
    clean: bool = True,
    collector: Collector | None = None,
    timeout: float = 10.0,
    session_expiry_s: int = 0,
) -> tuple[mqtt.Client, int]:
    """Connect a paho client on 127.0.0.1:``port``; returns (client, CONNACK reason value).

    The client's network loop is running (and reconnects on its own); the caller stops it
    (:func:`close`). A TLS handshake failure is returned as reason -1. ``session_expiry_s`` keeps
    an MQTT v5 session that long after a disconnect (with ``clean=False``).
    """
    client_id = client_id or f"ops-test-{uuid.uuid4().hex[:8]}"
    if protocol == mqtt.MQTTv5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, clean_session=clean
        )
    if username is not None:
        client.username_pw_set(username, password)
    if ca_file is not None:
        client.tls_set_context(ssl.create_default_context(cafile=str(ca_file)))
    done = threading.Event()
    outcome: dict[str, int] = {}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome["rc"] = reason_code.value
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        outcome.setdefault("rc", reason_code.value or -1)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(1, 2)  # tests restart brokers: come back quickly
    if collector is not None:
        client.on_message = collector.on_message
    try:
        if protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = session_expiry_s
            client.connect(HOST, port, keepalive=30, clean_start=clean, properties=properties)
        else:
            client.connect(HOST, port, keepalive=30)
    except (OSError, ssl.SSLError):
        return client, -1
    client.loop_start()
    done.wait(timeout)
    if outcome.get("rc", -1) != 0:
        client.loop_stop()
        client.reconnect_delay_set(60, 120)
    return client, outcome.get("rc", -1)


def subscribe(client: mqtt.Client, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> list:
    """Subscribe and wait for the SUBACK; returns the granted reason codes."""
    granted: list = []
    done = threading.Event()

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        granted.extend(reason_codes)
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic_filter, qos)
    assert done.wait(timeout), f"no SUBACK for {topic_filter}"
    return granted


def close(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()
