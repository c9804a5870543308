"""Model rollout over real mosquitto: accepted bundles are stored and swapped, bad ones refused."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time

import numpy as np
import pytest
from ops_fixtures import Collector, air_quality_bundle, close, connect, subscribe, tiny_model

from device_sim.bundle import SCHEMA_VERSION, load_bundle, sha256_bytes
from device_sim.errors import ConfigError
from device_sim.fleet import Fleet, FleetOptions
from device_sim.mqtt import rollout, topics
from ops import rollout as sender
from ops.broker import MosquittoBroker
from tinyfleet.cli import main

KEY = b"0123456789abcdef0123456789abcdef"


class RowSource:
    """Gas-sensor rows (temperature °C, relative humidity %) for the air_quality test bundle."""

    sample_rate = 1.0

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def read(self, n: int) -> np.ndarray:
        return np.column_stack(
            [20 + 5 * self.rng.standard_normal(n), 50 + 5 * self.rng.standard_normal(n)]
        )

    def close(self) -> None:
        pass


def _one_device(broker, old, tmp_path, duration_s: float) -> FleetOptions:
    """dev-1 running ``old`` at 20 windows/s for ``duration_s`` against ``broker``."""
    return FleetOptions(
        broker_url=broker.url,
        bundles=[old],
        device_ids=["dev-1"],
        rate_hz=20,
        duration_s=duration_s,
        state_dir=tmp_path / "state",
        drain_timeout_s=2,
    )


@contextlib.contextmanager
def device_with_rollout(tmp_path, monkeypatch, key_file):
    """mosquitto + the real device runtime (dev-1 running air_quality v1 at 20 windows/s) with
    rollout enabled, its key given as a device service would: a key file in the environment."""
    monkeypatch.setenv(rollout.KEY_FILE_ENV, str(key_file))
    broker = MosquittoBroker(tmp_path / "broker").start()
    old = air_quality_bundle(tmp_path / "v1", tiny_model(), version="v1")
    options = _one_device(broker, old, tmp_path, duration_s=120)
    runner = Fleet(options, source_factory=lambda bundle, index, seed: RowSource(seed))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    device = runner.devices[0]
    deadline = time.monotonic() + 10
    while not device.publisher.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    receiver = rollout.enable_rollout(device, tmp_path / "models")
    _wait_until_subscribed(broker, receiver)
    seen = Collector()
    watcher, rc = connect(broker.port, collector=seen)
    subscribe(watcher, "tinyfleet/dev-1/air_quality/prediction", qos=0)
    try:
        yield broker, receiver, device, tmp_path, seen
    finally:
        close(watcher)
        runner.stop()
        thread.join(15)
        runner.close()
        broker.close()


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """:func:`device_with_rollout` with a shared HMAC key."""
    key_file = tmp_path / "device.key"
    key_file.write_bytes(KEY + b"\n")
    with device_with_rollout(tmp_path, monkeypatch, key_file) as running:
        assert running[1].key == KEY
        yield running


def _wait_until_subscribed(broker, receiver) -> None:
    """Send invalid offers until the device answers one: its rollout subscription is live."""
    for attempt in range(100):
        _publish_raw(broker, {"protocol": "ping"}, [], rollout_id=f"ping{attempt}")
        if receiver.reports:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the device never subscribed to its rollout topics")
    # pings still in flight would land after the clear and pass for the test's own report: send
    # one last ping and wait for its answer, which comes after every earlier one
    _publish_raw(broker, {"protocol": "ping"}, [], rollout_id="ping-last")
    deadline = time.monotonic() + 10
    while not any(r.get("rollout_id") == "ping-last" for r in receiver.reports):
        assert time.monotonic() < deadline, "the device never answered the last ping"
        time.sleep(0.02)
    receiver.reports.clear()


def _versions(seen: Collector) -> list[str]:
    return [json.loads(payload)["model"]["version"] for _, payload, _ in seen.messages]


def _still_runs(seen: Collector, version: str) -> None:
    """A prediction made after this call still comes from ``version``."""
    before = len(seen.messages)
    assert seen.wait_for(lambda m: len(m) > before + 2)
    assert _versions(seen)[-1] == version


def _new_bundle(tmp_path, version="v2"):
    return air_quality_bundle(tmp_path / version, tiny_model(seed=1), version=version)


def test_signed_bundle_is_stored_swapped_between_windows_and_reported_running(fleet, capsys):
    broker, receiver, device, tmp_path, seen = fleet
    new = _new_bundle(tmp_path)
    key_file = tmp_path / "rollout.key"
    key_file.write_bytes(KEY + b"\n")
    status = main(
        [
            "rollout",
            "--bundle",
            str(new.directory),
            "--devices",
            "dev-1",
            "--broker",
            broker.url,
            "--key",
            str(key_file),
            "--timeout",
            "20",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert status == 0, result
    report = result["devices"]["dev-1"]
    assert report["state"] == "running", report
    assert report["running"] == new.identity()
    assert device.pipelines["air_quality"].bundle.version == "v2"
    assert seen.wait_for(lambda m: _versions(seen)[-1:] == ["v2"])
    stored = rollout.current_bundle_dir(tmp_path / "models", "air_quality")
    assert stored is not None and load_bundle(stored).model_sha256 == new.model_sha256
    assert receiver.running["air_quality"].version == "v2"


def test_large_bundle_arrives_in_chunks(fleet):
    broker, receiver, device, tmp_path, seen = fleet
    new = _new_bundle(tmp_path)
    result = sender.publish_rollout(
        broker.url, new.directory, ["dev-1"], KEY, timeout=20, chunk_bytes=512
    )
    assert result.ok, result.reports
    assert len(new.model_bytes()) > 2 * 512  # so it really took several chunks
    assert result.devices_in("running") == ["dev-1"]


def _publish_raw(broker, offer, chunks, rollout_id="deadbeef0001"):
    client, rc = connect(broker.port)
    assert rc == 0
    infos = [
        client.publish(topics.rollout_offer_topic("dev-1", rollout_id), json.dumps(offer), qos=1)
    ]
    for i, chunk in enumerate(chunks):
        infos.append(
            client.publish(topics.rollout_chunk_topic("dev-1", rollout_id, i), chunk, qos=1)
        )
    for info in infos:
        info.wait_for_publish(5)
    close(client)


def _wait_report(receiver, n=1, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while len(receiver.reports) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(receiver.reports) >= n, "the device sent no report"
    return receiver.reports[-1]


def test_tampered_model_is_refused_and_old_model_keeps_running(fleet):
    broker, receiver, device, tmp_path, seen = fleet
    offer, chunks = sender.build_offer(_new_bundle(tmp_path), KEY, 1024)
    flipped = bytearray(chunks[-1])
    flipped[-1] ^= 0x01
    _publish_raw(broker, offer, [*chunks[:-1], bytes(flipped)])
    report = _wait_report(receiver)
    assert report["state"] == "refused" and report["code"] == "sha256_mismatch"
    assert report["running"]["version"] == "v1"
    _still_runs(seen, "v1")
    assert rollout.current_bundle_dir(tmp_path / "models", "air_quality") is None


@pytest.mark.parametrize("sender_key", [b"another key of 32 bytes, wrong!!", None])
def test_wrong_or_missing_signature_is_refused(fleet, sender_key):
    broker, receiver, device, tmp_path, seen = fleet
    result = sender.publish_rollout(
        broker.url, _new_bundle(tmp_path).directory, ["dev-1"], sender_key
    )
    report = result.reports["dev-1"]
    assert not result.ok
    assert report["code"] == ("signature_invalid" if sender_key else "signature_missing")
    _still_runs(seen, "v1")


def _resigned(offer, manifest: dict) -> dict:
    text = json.dumps(manifest)
    digest = sha256_bytes(text.encode())
    return {
        **offer,
        "manifest": text,
        "manifest_sha256": digest,
        "signature": sender.sign(KEY, offer["task"], digest, offer["model_sha256"]),
    }


def test_schema_mismatch_and_wrong_task_are_refused_even_when_signed(fleet):
    broker, receiver, device, tmp_path, seen = fleet
    offer, chunks = sender.build_offer(_new_bundle(tmp_path), KEY, 1024)
    manifest = json.loads(offer["manifest"])
    _publish_raw(
        broker, _resigned(offer, {**manifest, "schema_version": SCHEMA_VERSION + 1}), chunks
    )
    assert _wait_report(receiver, 1)["code"] == "schema_mismatch"

    # a KWS bundle offered to a device that runs only air_quality
    kws = _resigned({**offer, "task": "kws"}, {**manifest, "task": "kws"})
    _publish_raw(broker, kws, chunks, rollout_id="deadbeef0002")
    report = _wait_report(receiver, 2)
    assert report["code"] == "wrong_task" and "runs air_quality" in report["reason"]

    # the manifest says air_quality, the offer says kws
    mismatch = _resigned({**offer, "task": "kws"}, manifest)
    _publish_raw(broker, mismatch, chunks, rollout_id="deadbeef0003")
    assert _wait_report(receiver, 3)["code"] == "wrong_task"
    _still_runs(seen, "v1")


def test_bundle_whose_model_does_not_fit_its_front_end_is_refused(fleet):
    broker, receiver, device, tmp_path, seen = fleet
    wrong = air_quality_bundle(tmp_path / "bad", tiny_model(n_inputs=5), version="bad")
    result = sender.publish_rollout(broker.url, wrong.directory, ["dev-1"], KEY, timeout=20)
    report = result.reports["dev-1"]
    assert report["code"] == "bundle_invalid" and "shape" in report["reason"]
    assert receiver.running["air_quality"].version == "v1"
    _still_runs(seen, "v1")


def test_operator_refuses_to_send_a_corrupted_bundle(tmp_path):
    bundle = air_quality_bundle(tmp_path / "b", tiny_model(), version="v1")
    copy = tmp_path / "copy"
    shutil.copytree(bundle.directory, copy)
    data = bytearray((copy / "model.tflite").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(Exception, match="does not match its bundle"):
        sender.publish_rollout("mqtt://127.0.0.1:1", copy, ["dev-1"])


def test_unanswered_devices_are_reported_and_exit_status_is_nonzero(fleet, capsys):
    broker, receiver, device, tmp_path, seen = fleet
    new = _new_bundle(tmp_path)
    status = main(
        [
            "rollout",
            "--bundle",
            str(new.directory),
            "--devices",
            "ghost",
            "--broker",
            broker.url,
            "--timeout",
            "1",
        ]
    )
    assert status == 1
    assert "ghost: no answer" in capsys.readouterr().out


class RefusingDevice:
    """A device runtime that turns the swap down (e.g. it is shutting the task down)."""

    def request_model_swap(self, task, bundle) -> None:
        raise ConfigError("task air_quality is being stopped")


def bare_receiver(tmp_path, device=None, old=None, **kwargs):
    """dev-1's receiver running ``old`` (air_quality v1 by default) on ``device`` (an
    :class:`AcceptingDevice` by default), without MQTT: returns it and the list its reports land in."""
    old = old or air_quality_bundle(tmp_path / "v1", tiny_model(), version="v1")
    reports: list[dict] = []
    receiver = rollout.RolloutReceiver(
        "dev-1",
        tmp_path / "models",
        device or AcceptingDevice(),
        lambda topic, payload, qos, retain: reports.append(json.loads(payload)),
        {"air_quality": old},
        **kwargs,
    )
    return receiver, reports


def test_device_refusing_the_swap_leaves_no_new_model_installed(tmp_path):
    receiver, reports = bare_receiver(tmp_path, RefusingDevice())
    offer, chunks = sender.build_offer(_new_bundle(tmp_path), None, 1024)
    receiver.handle(topics.rollout_offer_topic("dev-1", "r1"), json.dumps(offer).encode())
    for index, chunk in enumerate(chunks):
        receiver.handle(topics.rollout_chunk_topic("dev-1", "r1", index), chunk)
    assert reports[-1]["state"] == "refused" and reports[-1]["code"] == "swap_failed"
    assert "being stopped" in reports[-1]["reason"]
    assert list((tmp_path / "models" / "air_quality").iterdir()) == []
    assert receiver.running["air_quality"].version == "v1"


class AcceptingDevice:
    def __init__(self) -> None:
        self.swaps: list[str] = []

    def request_model_swap(self, task, bundle) -> None:
        self.swaps.append(bundle.version)


def test_redelivered_messages_of_a_decided_rollout_are_ignored(tmp_path):
    """QoS 1 may deliver a rollout twice (reconnect); it must not swap twice or report a refusal."""
    device = AcceptingDevice()
    receiver, reports = bare_receiver(tmp_path, device)
    offer, chunks = sender.build_offer(_new_bundle(tmp_path), None, 512)
    messages = [(topics.rollout_offer_topic("dev-1", "r1"), json.dumps(offer).encode())]
    messages += [(topics.rollout_chunk_topic("dev-1", "r1", i), c) for i, c in enumerate(chunks)]
    for topic, payload in messages + messages[:1] + messages[::-1]:
        receiver.handle(topic, payload)
    assert [r["state"] for r in reports] == ["accepted"] and device.swaps == ["v2"]

    bad = {**offer, "protocol": "something else"}
    receiver.handle(topics.rollout_offer_topic("dev-1", "r2"), json.dumps(bad).encode())
    for index, chunk in enumerate(chunks):  # chunks of the refused rollout arrive afterwards
        receiver.handle(topics.rollout_chunk_topic("dev-1", "r2", index), chunk)
    assert [r["state"] for r in reports] == ["accepted", "refused"]
    assert reports[-1]["code"] == "protocol"


def test_device_offline_during_rollout_applies_it_when_it_reconnects(tmp_path, monkeypatch):
    """The device's persistent session holds the rollout; the report lands on the retained topic."""
    key_file = tmp_path / "device.key"
    key_file.write_bytes(KEY)
    monkeypatch.setenv(rollout.KEY_FILE_ENV, str(key_file))
    broker = MosquittoBroker(tmp_path / "broker").start()
    old = air_quality_bundle(tmp_path / "v1", tiny_model(), version="v1")
    options = _one_device(broker, old, tmp_path, duration_s=1.0)

    def source(bundle, index, seed):
        return RowSource(seed)

    try:
        first = Fleet(options, source, tmp_path / "models")  # subscribes, then goes away
        first.run()
        first.close()
        result = sender.publish_rollout(
            broker.url, _new_bundle(tmp_path).directory, ["dev-1"], KEY, timeout=1
        )
        assert result.reports["dev-1"]["state"] == "no_answer"

        options.duration_s = 3.0
        second = Fleet(options, source, tmp_path / "models")
        second.run()
        second.close()
        assert second.devices[0].pipelines["air_quality"].bundle.version == "v2"
        seen = Collector()
        late, rc = connect(broker.port, collector=seen)
        subscribe(late, topics.rollout_state_topic("dev-1"))
        assert seen.wait_for(lambda m: len(m) >= 1)
        report = json.loads(seen.messages[-1][1])
        assert report["rollout_id"] == result.rollout_id and report["state"] == "accepted"
        close(late)
        # a later restart with the original bundle runs the rolled-out one
        restarted = rollout.rolled_out_bundles([old], tmp_path / "models")
        assert [b.version for b in restarted] == ["v2"]
        stored = rollout.current_bundle_dir(tmp_path / "models", "air_quality") / "model.tflite"
        stored.write_bytes(stored.read_bytes()[:-1] + b"?")  # corrupted on disk: not run
        assert [b.version for b in rollout.rolled_out_bundles([old], tmp_path / "models")] == ["v1"]
    finally:
        broker.close()
