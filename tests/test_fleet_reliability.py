"""Reliability with real processes: SIGKILLed devices and brokers, unreachable brokers.

Uses the tiny real vibration bundle of ``tests/fleet_fixtures.py``. "Published" is read from the
devices' own outbox files (the ``seq`` counters), so a prediction counts as published as soon as a
device committed it, whether or not it could send it.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from device_sim.fleet import FleetOptions, run_fleet
from device_sim.mqtt import topics
from ops.broker import MosquittoBroker, free_port
from ops.subscriber import Subscriber
from tests.fleet_fixtures import (
    Collector,
    expected_keys,
    seq_counters,
    start_cli,
    tiny_vibration_bundle,
    wait_for,
)
from tests.test_fleet_e2e import Watcher


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


def test_killed_device_is_reported_offline_by_its_last_will(tmp_path, bundle):
    with MosquittoBroker(tmp_path / "broker") as broker:
        watcher = Watcher(broker.url, "tinyfleet/+/status")
        status = topics.status_topic("lw-000")
        device = start_cli(
            "simulate", "--devices", "1", "--device-prefix", "lw", "--bundles",
            str(bundle.directory), "--broker", broker.url, "--state-dir", str(tmp_path / "s"),
        )  # fmt: skip
        try:
            assert wait_for(
                lambda: (
                    status in watcher.messages and watcher.messages[status].payload == b"online"
                ),
                60,
            ), device.stderr.read() if device.poll() is not None else "device did not come online"
            device.send_signal(signal.SIGKILL)
            device.wait(10)
            assert wait_for(lambda: watcher.messages[status].payload == b"offline", 10)
            assert watcher.messages[status].retain is False  # delivered live, as the Will
        finally:
            if device.poll() is None:
                device.kill()
            watcher.close()
        late = Watcher(broker.url, "tinyfleet/+/status")  # a newcomer sees the retained Will
        assert wait_for(lambda: status in late.messages, 5)
        assert late.messages[status].payload == b"offline" and late.messages[status].retain
        late.close()


def test_broker_killed_and_restarted_mid_stream_loses_no_prediction(tmp_path, bundle):
    """≥ 2,000 QoS 1 predictions; mosquitto is SIGKILLed and restarted from its persistence."""
    with MosquittoBroker(tmp_path / "broker", persistence=True) as broker:
        collector = Collector()
        subscriber = Subscriber(broker.url, client_id="reliable-sub", on_prediction=collector)
        subscriber.start().wait_connected()
        options = FleetOptions(
            broker.url,
            [bundle],
            devices=4,
            rate_hz=150,
            max_windows=520,  # 2,080 predictions, however long a loaded machine needs
            prediction_qos=1,
            state_dir=tmp_path / "state",
        )
        reports: list[dict] = []
        runner = threading.Thread(target=lambda: reports.append(run_fleet(options)))
        runner.start()
        assert wait_for(lambda: len(collector.keys) > 300, 60)
        broker.kill()
        time.sleep(0.7)  # devices keep measuring into their outboxes
        broker.start()
        runner.join(60)
        expected = expected_keys(tmp_path / "state")
        assert wait_for(lambda: set(collector.keys) >= expected, 30)
        subscriber.close()
    report = reports[0]
    assert report["reconnects"] >= 4, "every device lost and regained the broker"
    assert report["published"]["undelivered"] == 0
    assert len(expected) == report["published"]["predictions"] >= 2000
    assert set(collector.keys) == expected  # received set == published set
    assert len(collector.keys) == len(expected)  # and each once after dedup
    # The devices resent what the broker acknowledged just before it died (it may not have saved
    # it yet); the subscriber's dedup dropped the copies it already had.
    assert subscriber.duplicates > 0


def test_killed_device_restarts_continues_its_seq_and_sends_what_it_had_queued(tmp_path, bundle):
    state = tmp_path / "state"
    run = [
        "simulate", "--devices", "1", "--device-prefix", "rs", "--bundles", str(bundle.directory),
        "--rate", "50", "--qos", "1", "--state-dir", str(state),
    ]  # fmt: skip
    with MosquittoBroker(tmp_path / "broker", persistence=True) as broker:
        collector = Collector()
        subscriber = Subscriber(broker.url, client_id="restart-sub", on_prediction=collector)
        subscriber.start().wait_connected()
        first = start_cli(*run, "--broker", broker.url)
        try:
            assert wait_for(lambda: len(collector.keys) >= 20, 60)
            broker.stop()  # the device cannot send: it queues on disk
            queued_from = seq_counters(state)[("rs-000", "vibration")]
            assert wait_for(
                lambda: seq_counters(state)[("rs-000", "vibration")] >= queued_from + 25, 20
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        killed_at = seq_counters(state)[("rs-000", "vibration")]
        broker.start()
        second = start_cli(*run, "--broker", broker.url, "--duration", "1", "--json")
        out, err = second.communicate(timeout=90)
        assert second.returncode == 0, err
        report = json.loads(out)
        assert report["published"]["undelivered"] == 0
        expected = expected_keys(state)
        assert wait_for(lambda: set(collector.keys) >= expected, 20)
        subscriber.close()
    received = sorted(seq for _, _, seq in set(collector.keys))
    assert received == list(range(len(expected)))  # gap-free across the kill
    assert max(received) >= killed_at  # the second run continued the seq
    assert set(range(queued_from, killed_at)) <= set(received)  # the queued ones arrived


def test_unreachable_broker_is_retried_with_backoff_and_the_outbox_catches_up(
    tmp_path, bundle, caplog
):
    port = free_port()
    broker = MosquittoBroker(tmp_path / "broker", port=port, persistence=True)
    broker.start()
    collector = Collector()
    subscriber = Subscriber(broker.url, client_id="late-sub", on_prediction=collector)
    subscriber.start().wait_connected()
    broker.stop()  # the subscriber's session is saved; the devices will find nobody
    options = FleetOptions(
        broker.url,
        [bundle],
        devices=1,
        rate_hz=50,
        duration_s=3.0,
        prediction_qos=1,
        state_dir=tmp_path / "state",
    )
    reports: list[dict] = []
    runner = threading.Thread(target=lambda: reports.append(run_fleet(options)))
    caplog.set_level("INFO", logger="device_sim.mqtt.client")
    runner.start()
    time.sleep(1.5)
    broker.start()
    runner.join(60)
    expected = expected_keys(tmp_path / "state")
    assert wait_for(lambda: set(collector.keys) >= expected, 20)
    subscriber.close()
    broker.close()
    assert f"cannot reach the MQTT broker at mqtt://127.0.0.1:{port}" in caplog.text
    assert "retrying in" in caplog.text
    assert reports[0]["published"]["undelivered"] == 0
    assert set(collector.keys) == expected and len(expected) >= 100
