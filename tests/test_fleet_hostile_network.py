"""QoS 1 over a hostile network: devices reach mosquitto through ``tests/fault_proxy.py``.

Latency with jitter and a bandwidth cap, a silent stall (half-open connection), resets in the
middle of a packet, and a partition. The subscriber is connected to the broker directly; every
prediction a device committed must arrive (received set == published set). Each test prints its
figures (time to detect, time to drain); run with ``-s`` to see them. The partition is scaled from
the issue's 60 s to 6 s to keep the suite short (the 60 s run is in docs/reliability.md).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from fault_proxy import FaultProxy

from device_sim.fleet import Fleet, FleetOptions
from ops.broker import MosquittoBroker
from ops.subscriber import Subscriber
from tests.fleet_fixtures import Collector, expected_keys, tiny_vibration_bundle, wait_for

KEEPALIVE_S = 2
PARTITION_S = float(os.environ.get("TINYFLEET_PARTITION_S", "6"))


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


@pytest.fixture
def network(tmp_path):
    """mosquitto (persistent), a proxy in front of it, a persistent subscriber behind it."""
    with MosquittoBroker(tmp_path / "broker", persistence=True) as broker:
        proxy = FaultProxy(broker.port).start()
        collector = Collector()
        subscriber = Subscriber(broker.url, client_id="hostile-sub", on_prediction=collector)
        subscriber.start().wait_connected()
        try:
            yield proxy, collector, subscriber
        finally:
            subscriber.close()
            proxy.close()


class FleetRun:
    """A fleet running in a thread, connected through the proxy."""

    def __init__(self, proxy, bundle, state, *, devices=2, rate_hz=20.0, duration_s=6.0):
        options = FleetOptions(
            proxy.url,
            [bundle],
            devices=devices,
            rate_hz=rate_hz,
            duration_s=duration_s,
            prediction_qos=1,
            state_dir=state,
            keepalive_s=KEEPALIVE_S,
            drain_timeout_s=90,
        )
        self.state = state
        self.duration_s = duration_s
        self.fleet = Fleet(options)
        self.report: dict = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert wait_for(self.all_connected, 30), "the fleet never connected through the proxy"
        self.started = time.monotonic()

    def _run(self) -> None:
        try:
            self.report = self.fleet.run()
        finally:
            self.fleet.close()

    def all_connected(self) -> bool:
        return all(d.publisher.connected for d in self.fleet.devices)

    def none_connected(self) -> bool:
        return not any(d.publisher.connected for d in self.fleet.devices)

    def backlog(self) -> int:
        """Predictions in the devices' outboxes not yet acknowledged by the broker."""
        return sum(len(d.publisher.spool) for d in self.fleet.devices)

    def drain_time(self, since: float, timeout: float = 60) -> float:
        """Seconds from ``since`` until the outbox backlog is (nearly) gone again."""
        assert wait_for(lambda: self.backlog() <= 2 * len(self.fleet.devices), timeout, 0.02)
        return time.monotonic() - since

    def finish(self, collector: Collector, timeout: float = 120) -> float:
        """Wait for the run and for every committed prediction; returns the seconds from the
        scheduled end of production until the last prediction arrived."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the fleet did not finish"
        ended = self.started + self.duration_s
        expected = expected_keys(self.state)
        assert wait_for(lambda: set(collector.keys) >= expected, 30), (
            f"{len(expected - set(collector.keys))} of {len(expected)} predictions never arrived"
        )
        assert set(collector.keys) == expected  # zero loss at QoS 1, nothing foreign
        assert self.report["published"]["undelivered"] == 0
        return time.monotonic() - ended


def test_latency_jitter_and_a_bandwidth_cap_lose_nothing(network, bundle, tmp_path):
    proxy, collector, subscriber = network
    proxy.latency_s, proxy.jitter_s = 0.15, 0.1
    proxy.bytes_per_s = 20_000  # below what 3 devices x 20 windows/s send: a queue builds up
    run = FleetRun(proxy, bundle, tmp_path / "state", devices=3, duration_s=4)
    drain_s = run.finish(collector)
    latency = [f["latency_ms_median"] for f in subscriber.summary()["devices"].values()]
    print(f"\nlatency+jitter+cap: {len(collector.keys)} predictions, median latency per device "
          f"{[round(x) for x in latency]} ms, all delivered {drain_s:.1f} s after production ended")  # fmt: skip
    assert min(latency) >= 150  # the proxy's delay was really in the path
    assert len(collector.keys) >= 100  # 240 asked; fewer when the CPU is starved


def test_half_open_connection_is_detected_by_keepalive_and_drained(network, bundle, tmp_path):
    proxy, collector, subscriber = network
    run = FleetRun(proxy, bundle, tmp_path / "state", duration_s=10)
    time.sleep(1.5)
    stalled_at = time.monotonic()
    assert proxy.blackhole() >= 2  # both devices' connections go silent, no FIN, no RST
    assert wait_for(run.none_connected, 4 * KEEPALIVE_S + 2)
    detect_s = time.monotonic() - stalled_at
    assert wait_for(run.all_connected, 30, 0.02)
    reconnect_s = time.monotonic() - stalled_at
    drain_s = run.drain_time(stalled_at + reconnect_s)
    run.finish(collector)
    print(f"\nhalf-open: detected after {detect_s:.1f} s (keepalive {KEEPALIVE_S} s), reconnected "
          f"after {reconnect_s:.1f} s, backlog drained {drain_s:.2f} s after reconnecting")  # fmt: skip
    # paho: PINGREQ after 1 keepalive without traffic in, gives up after the 2nd (2.6-2.7 s on a
    # quiet machine); a CPU-starved network loop runs late (7.0 s seen with 2 busy loops)
    assert detect_s <= 4 * KEEPALIVE_S + 1
    assert run.report["reconnects"] >= 2


def test_connections_reset_mid_packet_lose_nothing(network, bundle, tmp_path):
    proxy, collector, subscriber = network
    run = FleetRun(proxy, bundle, tmp_path / "state", duration_s=6)
    for _ in range(4):
        time.sleep(1.0)
        proxy.reset()
    drain_s = run.finish(collector)
    print(f"\nresets: {proxy.resets} connections cut mid-packet, {run.report['reconnects']} "
          f"reconnects, all delivered {drain_s:.1f} s after production ended")  # fmt: skip
    assert proxy.resets >= 4 and run.report["reconnects"] >= 4


def test_partition_then_heal_loses_nothing(network, bundle, tmp_path):
    proxy, collector, subscriber = network
    run = FleetRun(proxy, bundle, tmp_path / "state", duration_s=PARTITION_S + 4)
    time.sleep(1.5)
    cut_at = time.monotonic()
    proxy.partition()
    assert wait_for(run.none_connected, 4 * KEEPALIVE_S + 2)
    detect_s = time.monotonic() - cut_at
    time.sleep(max(0.0, PARTITION_S - (time.monotonic() - cut_at)))
    queued = sum(len(d.publisher.spool) for d in run.fleet.devices)
    proxy.heal()
    healed_at = time.monotonic()
    assert wait_for(run.all_connected, 60, 0.02)
    reconnect_s = time.monotonic() - healed_at
    drain_s = run.drain_time(healed_at + reconnect_s)
    run.finish(collector)
    print(f"\npartition {PARTITION_S:g} s: detected after {detect_s:.1f} s, {queued} predictions "
          f"queued, reconnected {reconnect_s:.1f} s after healing, backlog drained {drain_s:.2f} s "
          "after reconnecting")  # fmt: skip
    assert queued > 0
