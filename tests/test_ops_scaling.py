"""Scale-out on loopback: devices on one mosquitto, subscribers on another, joined by a bridge, and
two subscribers sharing the work through an MQTT v5 shared subscription (``docs/scaling.md``)."""

from __future__ import annotations

import time

import numpy as np
import paho.mqtt.client as mqtt
from ops_fixtures import Collector, air_quality_bundle, close, connect, subscribe, tiny_model

from device_sim.fleet import Fleet, FleetOptions
from device_sim.mqtt import topics
from device_sim.mqtt.broker import MosquittoBroker
from device_sim.mqtt.payload import parse_prediction

DEVICES = 4
WINDOWS = 300  # per device: 1,200 predictions in all


def bridge_config(name: str, remote_port: int) -> list[str]:
    """mosquitto lines for a bridge that pulls the fleet's topics from the device broker."""
    return [
        f"connection {name}",
        f"address 127.0.0.1:{remote_port}",
        "topic tinyfleet/# in 1",
        "cleansession false",
        f"remote_clientid {name}",
        "restart_timeout 1 5",
        "try_private true",
    ]


class RowSource:
    sample_rate = 1.0

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def read(self, n: int) -> np.ndarray:
        return np.column_stack([20 + self.rng.standard_normal(n), 50 + self.rng.standard_normal(n)])

    def close(self) -> None:
        pass


def test_bridged_brokers_and_shared_subscription_lose_and_duplicate_nothing(tmp_path):
    edge = MosquittoBroker(tmp_path / "edge").start()
    core = MosquittoBroker(
        tmp_path / "core", extra_config=bridge_config("core-from-edge", edge.port)
    ).start()
    workers = [Collector(), Collector()]
    clients = []
    try:
        for index, seen in enumerate(workers):
            client, rc = connect(
                core.port, protocol=mqtt.MQTTv5, client_id=f"worker-{index}", collector=seen
            )
            assert rc == 0
            clients.append(client)
            granted = subscribe(client, topics.shared("workers", topics.ALL_PREDICTIONS), qos=1)
            assert granted[0].value == 1
        # the bridge is up once a message published on the edge reaches the core
        probe = Collector()
        watcher, _ = connect(core.port, collector=probe)
        clients.append(watcher)
        subscribe(watcher, "tinyfleet/probe/#")
        publisher, _ = connect(edge.port)
        clients.append(publisher)
        deadline = time.monotonic() + 15
        while not probe.messages and time.monotonic() < deadline:
            publisher.publish("tinyfleet/probe/ping", b"1", qos=1)
            probe.wait_for(lambda m: bool(m), timeout=0.3)
        assert probe.messages, "the bridge from core to edge did not come up"

        bundle = air_quality_bundle(tmp_path / "aq", tiny_model(), version="v1")
        runner = Fleet(
            FleetOptions(
                broker_url=edge.url,
                bundles=[bundle],
                devices=DEVICES,
                device_prefix="edge",
                fast=True,
                max_windows=WINDOWS,
                prediction_qos=1,
                state_dir=tmp_path / "state",
            ),
            source_factory=lambda b, index, seed: RowSource(seed),
        )
        try:
            report = runner.run()
        finally:
            runner.close()
        assert report["published"]["undelivered"] == 0
        expected = {
            (f"edge-{d:03d}", "air_quality", seq) for d in range(DEVICES) for seq in range(WINDOWS)
        }

        def unique(_=None) -> set:
            return {
                parse_prediction(payload).key
                for seen in workers
                for _, payload, _ in list(seen.messages)
            }

        workers[0].wait_for(lambda _: len(unique()) >= len(expected), timeout=60)
        keys = [[parse_prediction(p).key for _, p, _ in seen.messages] for seen in workers]
        received = unique()
        assert received == expected  # nothing lost (after dedup by device, task, seq)
        duplicates = sum(len(k) for k in keys) - len(received)
        # the group shares the stream: each message went to one worker, both did some of the work
        assert set(keys[0]).isdisjoint(keys[1])
        assert min(len(k) for k in keys) > 0.1 * len(expected)
        assert duplicates == 0
    finally:
        close(*clients)
        core.close()
        edge.close()
