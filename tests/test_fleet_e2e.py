"""End to end: bundle → simulated devices → real mosquitto on a loopback port → subscriber.

The bundle is the tiny real vibration bundle of ``tests/fleet_fixtures.py`` (real front end,
tf_keras autoencoder, int8 conversion, LiteRT on the device) rather than a `training.vibration`
quick-preset run, which takes ~1.5 min on 2 cores — too slow for this suite.
"""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from device_sim.bundle import load_bundle, write_bundle
from device_sim.fleet import Fleet, FleetOptions, run_fleet
from device_sim.mqtt import topics
from device_sim.mqtt.client import Connection, NetworkLoop, parse_broker_url
from ops.broker import MosquittoBroker
from ops.store import PredictionStore
from ops.subscriber import Subscriber
from tests.fleet_fixtures import (
    TINYFLEET,
    Collector,
    expected_keys,
    tiny_vibration_bundle,
    wait_for,
)
from tinyfleet.cli import main


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


@pytest.fixture
def broker(tmp_path):
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


class Watcher:
    """A raw client on its own thread: keeps the last message (with v5 properties) per topic."""

    def __init__(self, url: str, topic_filter: str = "tinyfleet/#") -> None:
        self.messages: dict[str, object] = {}
        self.loop = NetworkLoop()
        self.connection = Connection("watcher", parse_broker_url(url), clean=True)
        self.connection.subscribe(topic_filter, self._keep, 1)
        self.loop.add(self.connection)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert wait_for(lambda: self.connection.connected, 10)

    def _keep(self, message) -> None:
        self.messages[message.topic] = message

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.loop.close()


def test_three_devices_deliver_every_prediction_once_with_gap_free_seq(tmp_path, broker, bundle):
    collector = Collector()
    store = PredictionStore(tmp_path / "predictions.sqlite")
    subscriber = Subscriber(broker.url, store=store, on_prediction=collector)
    subscriber.start().wait_connected()
    watcher = Watcher(broker.url)
    options = FleetOptions(
        broker.url, [bundle], devices=3, rate_hz=25, duration_s=2.0, state_dir=tmp_path / "state"
    )
    report = run_fleet(options)

    published = report["published"]["predictions"]
    assert published >= 60  # ~150 on an idle machine; the simulator slows under load
    assert report["published"]["undelivered"] == 0
    assert wait_for(lambda: subscriber.unique >= published, 15)
    subscriber.close()
    watcher.close()

    expected = expected_keys(tmp_path / "state")
    assert len(expected) == published
    assert sorted(collector.keys) == sorted(expected)  # each exactly once
    assert {device for device, _, _ in expected} == {"sim-000", "sim-001", "sim-002"}
    assert subscriber.duplicates == 0 and subscriber.missing() == 0
    assert PredictionStore(tmp_path / "predictions.sqlite").keys() == expected

    # MQTT v5 properties on a prediction, retained status and model identity
    message = watcher.messages[topics.prediction_topic("sim-001", "vibration")]
    assert message.properties.ContentType == "application/json"
    assert ("schema", "1") in message.properties.UserProperty
    assert 0 < message.properties.MessageExpiryInterval <= 86400
    assert json.loads(message.payload)["timing_ms"]["invoke"] > 0
    assert watcher.messages[topics.status_topic("sim-000")].payload == b"offline"  # said goodbye
    identity = json.loads(watcher.messages[topics.model_topic("sim-002", "vibration")].payload)
    assert identity["model"] == bundle.identity()


def test_shared_subscription_splits_the_fleet_between_subscribers(tmp_path, broker, bundle):
    collectors = [Collector(), Collector()]
    subscribers = [
        Subscriber(broker.url, share="workers", on_prediction=c).start().wait_connected()
        for c in collectors
    ]
    options = FleetOptions(
        broker.url,
        [bundle],
        devices=2,
        rate_hz=100,
        duration_s=1.5,
        prediction_qos=1,
        state_dir=tmp_path / "state",
    )
    published = run_fleet(options)["published"]["predictions"]
    assert wait_for(lambda: sum(s.unique for s in subscribers) >= published, 15)
    for subscriber in subscribers:
        subscriber.close()
    first, second = (set(c.keys) for c in collectors)
    assert first and second, "both members of the group get a share"
    assert not first & second, "no prediction goes to both"
    assert first | second == expected_keys(tmp_path / "state")


def test_model_swap_applies_between_windows_and_is_announced(tmp_path, broker, bundle):
    new = write_bundle(
        tmp_path / "v2",
        bundle.model_bytes(),
        task="vibration",
        name=bundle.name,
        input=bundle.input,
        output=bundle.output,
        feature_config=bundle.feature_config,
        head=bundle.head,
        version="fixture-v2",
    )
    collector = Collector()
    subscriber = Subscriber(broker.url, on_prediction=collector).start().wait_connected()
    watcher = Watcher(broker.url)
    received_commands: list[tuple[str, bytes]] = []
    fleet = Fleet(
        FleetOptions(
            broker.url, [bundle], devices=1, rate_hz=50, duration_s=3, state_dir=tmp_path / "s"
        )
    )
    device = fleet.devices[0]
    device.add_message_handler(
        topics.rollout_filter(device.device_id),
        lambda topic, payload: received_commands.append((topic, payload)),
    )
    runner = threading.Thread(target=fleet.run)
    runner.start()
    assert wait_for(lambda: len(collector.keys) >= 20, 10)
    device.request_model_swap("vibration", load_bundle(new.directory))
    with pytest.raises(Exception, match="does not run task"):
        device.request_model_swap("kws", new)
    watcher.connection.publish(f"tinyfleet/{device.device_id}/rollout/ping", b"hello", 1)
    runner.join(20)
    fleet.close()
    subscriber.close()
    watcher.close()

    versions = collector.versions
    switch = versions.index("fixture-v2")
    assert switch >= 20 and set(versions[switch:]) == {"fixture-v2"}
    assert set(versions[:switch]) == {bundle.version}
    identity = json.loads(
        watcher.messages[topics.model_topic(device.device_id, "vibration")].payload
    )
    assert identity["model"]["version"] == "fixture-v2"
    assert received_commands == [(f"tinyfleet/{device.device_id}/rollout/ping", b"hello")]


def test_malformed_messages_are_counted_and_skipped(broker, bundle):
    subscriber = Subscriber(broker.url).start().wait_connected()
    watcher = Watcher(broker.url, "nothing/#")
    topic = topics.prediction_topic("dev-x", "vibration")
    watcher.connection.publish(topic, b"{broken", 1)
    watcher.connection.publish(topic, json.dumps({"schema": 1, "device": "dev-x"}).encode(), 1)
    from device_sim.mqtt.payload import encode_prediction

    good = encode_prediction(
        device="dev-x",
        task="vibration",
        model=bundle.identity(),
        seq=0,
        window_start_ms=0,
        window_end_ms=1,
        fields={"anomaly_score": 0.1},
    )
    watcher.connection.publish(topic, good, 1)
    watcher.connection.publish(topic, good, 1)  # a duplicate delivery
    assert wait_for(lambda: subscriber.received >= 4, 10)
    subscriber.close()
    watcher.close()
    assert (subscriber.malformed, subscriber.unique, subscriber.duplicates) == (2, 1, 1)


def test_subscribe_cli_receives_what_was_queued_for_its_persistent_session(
    tmp_path, broker, bundle, capsys
):
    args = ["subscribe", "--broker", broker.url, "--client-id", "cli-test", "--json"]
    assert main([*args, "--duration", "0.5"]) == 0  # creates the session, then goes away
    capsys.readouterr()
    run_fleet(
        FleetOptions(
            broker.url,
            [bundle],
            devices=1,
            max_windows=5,
            fast=True,
            prediction_qos=1,
            state_dir=tmp_path / "s",
        )
    )
    assert main([*args, "--count", "5", "--duration", "10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    seqs = [json.loads(line)["seq"] for line in lines[:-1]]
    assert sorted(seqs) == [0, 1, 2, 3, 4]
    assert json.loads(lines[-1])["summary"]["predictions"] == 5


def test_device_cli_reads_stdin_and_flags_clipped_windows_instead_of_inferring(
    tmp_path, broker, bundle
):
    import numpy as np

    from device_sim.sources.vibration import SimSource

    collector = Collector()
    predictions = []
    subscriber = Subscriber(
        broker.url,
        on_prediction=lambda p, payload, ms: (collector(p, payload, ms), predictions.append(p)),
    )
    subscriber.start().wait_connected()
    window, hop = 256, 128
    samples = SimSource(3200.0, 3, seed=5).read(window + 9 * hop)
    samples[700:710] = 16.0  # the sensor saturates (full scale 16 g): windows 4 and 5 see it
    text = "x,y,z\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in samples)
    result = subprocess.run(
        [*TINYFLEET, "device", "--bundle", str(bundle.directory), "--source", "stdin",
         "--device-id", "pump-7", "--broker", broker.url, "--qos", "1",
         "--state-dir", str(tmp_path / "s"), "--json"],
        input=text, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["windows"] == 10 and report["published"]["undelivered"] == 0
    assert wait_for(lambda: len(predictions) == 10, 10)
    subscriber.close()
    by_seq = {p.seq: p for p in predictions}
    assert sorted(by_seq) == list(range(10))
    assert {p.device for p in predictions} == {"pump-7"}
    invalid = sorted(seq for seq, p in by_seq.items() if not p.valid)
    assert invalid == [4, 5]
    assert "clip" in by_seq[4].reason
    assert by_seq[4].timing_ms["invoke"] == 0  # not inferred
    assert "anomaly_score" in by_seq[3].fields and "anomaly_score" not in by_seq[4].fields
    assert np.isfinite(by_seq[0].fields["anomaly_score"])


def test_home_assistant_discovery_is_sent_on_connect_and_again_when_ha_comes_online(
    tmp_path, broker, bundle
):
    watcher = Watcher(broker.url, "homeassistant/#")
    counts: dict[str, int] = {}
    watcher.connection.subscribe(
        "homeassistant/+/+/+/config",
        lambda m: counts.__setitem__(m.topic, counts.get(m.topic, 0) + 1),
        1,
    )
    fleet = Fleet(
        FleetOptions(
            broker.url,
            [bundle],
            devices=1,
            rate_hz=20,
            duration_s=2.5,
            ha_discovery=True,
            state_dir=tmp_path / "s",
        )
    )
    runner = threading.Thread(target=fleet.run)
    runner.start()
    assert wait_for(lambda: counts and all(n >= 1 for n in counts.values()), 10)
    first = dict(counts)
    watcher.connection.publish("homeassistant/status", b"online", 1)
    assert wait_for(lambda: all(counts[t] >= 2 for t in first), 10)
    runner.join(20)
    fleet.close()
    watcher.close()
    assert all(f"/{fleet.devices[0].device_id}/" in topic for topic in first)
    config = json.loads(watcher.messages[next(iter(first))].payload)
    assert config["device"]["identifiers"]


def test_iter_predictions_yields_each_new_prediction_for_a_users_script(tmp_path, broker, bundle):
    from ops.subscriber import iter_predictions

    options = FleetOptions(
        broker.url,
        [bundle],
        devices=2,
        max_windows=4,
        fast=True,
        prediction_qos=1,
        state_dir=tmp_path / "s",
    )
    producer = threading.Timer(1.5, run_fleet, args=(options,))  # after the script subscribed
    producer.start()
    seen = [p.key for p in iter_predictions(broker.url, count=8, timeout=30)]
    producer.join(30)
    assert sorted(seen) == sorted(expected_keys(tmp_path / "s"))
    assert list(iter_predictions(broker.url, timeout=0.5)) == []  # silence ends the iteration


def test_fleet_runs_against_a_secure_broker_with_per_device_credentials(tmp_path, bundle):
    """TLS (the ops engineer's CA) + password per device ('{device}' in --password) + ACL."""
    from device_sim.mqtt.client import Credentials
    from ops.security import SecurityFiles, add_credentials, secure_broker_config

    state = tmp_path / "broker"
    config = secure_broker_config(state)
    for device in ("sec-000", "sec-001"):
        add_credentials(state, device, "device", password=f"pw-{device}", reload=False)
    add_credentials(state, "watch", "subscriber", password="watch-pw", reload=False)
    ca = SecurityFiles(state.resolve()).ca_cert
    with MosquittoBroker(state, extra_config=config) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}"
        collector = Collector()
        subscriber = Subscriber(
            url, credentials=Credentials("watch", "watch-pw", ca), on_prediction=collector
        )
        subscriber.start().wait_connected()
        options = FleetOptions(
            url,
            [bundle],
            devices=2,
            device_prefix="sec",
            credentials=Credentials("{device}", "pw-{device}", ca),
            max_windows=5,
            fast=True,
            prediction_qos=1,
            state_dir=tmp_path / "s",
        )
        report = run_fleet(options)
        assert wait_for(lambda: len(collector.keys) >= 10, 10)
        subscriber.close()
    assert report["published"]["undelivered"] == 0
    assert sorted(collector.keys) == sorted(expected_keys(tmp_path / "s"))
