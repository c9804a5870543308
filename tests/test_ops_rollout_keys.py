"""Operator Ed25519 rollout keys and anti-rollback, with real mosquitto and the device runtime.

The device holds only the operator's public key. An attacker who can read the rollout topics
(e.g. with a stolen subscriber or device account) captures a validly signed bundle and replays it
after a newer one was rolled out: the device refuses it as a rollback. The operator can still go
back on purpose with a signed, per-device, expiring downgrade.
"""

from __future__ import annotations

import json
import os

import pytest
from ops_fixtures import Collector, air_quality_bundle, close, connect, subscribe, tiny_model
from test_ops_rollout import _still_runs, _wait_report, bare_receiver, device_with_rollout

from device_sim.errors import ConfigError
from device_sim.mqtt import topics
from device_sim.mqtt.rollout_keys import (
    generate_key_pair,
    load_signing_key,
    load_verify_keys,
)
from ops import rollout as sender
from tests.fleet_fixtures import wait_for
from tinyfleet.cli import main


@pytest.fixture
def ed25519_fleet(tmp_path, monkeypatch):
    """dev-1 trusting the operator's public key only; yields (… , signing key, key dir)."""
    keys = tmp_path / "keys"
    generate_key_pair(keys / "ops.key", keys / "ops.pub")
    with device_with_rollout(tmp_path, monkeypatch, keys / "ops.pub") as running:
        yield (*running, load_signing_key(keys / "ops.key"), keys)


def _bundle(tmp_path, version, release, seed=1):
    return air_quality_bundle(
        tmp_path / version, tiny_model(seed=seed), version=version, release=release
    )


def test_replayed_older_signed_bundle_is_refused_and_a_signed_downgrade_is_not(
    ed25519_fleet, capsys
):
    broker, receiver, device, tmp_path, seen, key, keys = ed25519_fleet
    base = receiver.running["air_quality"].release
    spy = Collector()  # an attacker allowed to read the device's rollout topics
    attacker, rc = connect(broker.port, collector=spy)
    subscribe(attacker, "tinyfleet/dev-1/rollout/+/#")
    v2 = _bundle(tmp_path, "v2", base + 1)
    assert sender.publish_rollout(broker.url, v2.directory, ["dev-1"], key, timeout=20).ok
    captured = list(spy.messages)
    assert any(topic.endswith("/offer") for topic, _, _ in captured)
    v3 = _bundle(tmp_path, "v3", base + 2, seed=2)
    assert sender.publish_rollout(broker.url, v3.directory, ["dev-1"], key, timeout=20).ok

    before = len(receiver.reports)
    for topic, payload, _ in captured:  # replayed byte for byte, under a fresh rollout id
        parts = topic.split("/")
        parts[3] = "replay0000001"
        attacker.publish("/".join(parts), payload, qos=1).wait_for_publish(5)
    report = _wait_report(receiver, before + 1)
    assert report["rollout_id"] == "replay0000001"
    assert report["state"] == "refused" and report["code"] == "rollback", report
    assert report["running"]["version"] == "v3"
    _still_runs(seen, "v3")

    # the operator goes back on purpose: a downgrade signed for dev-1
    status = main(
        [
            "rollout",
            "--bundle", str(v2.directory),
            "--devices", "dev-1",
            "--broker", broker.url,
            "--key", str(keys / "ops.key"),
            "--downgrade",
            "--timeout", "20",
            "--json",
        ]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert status == 0, result
    assert result["devices"]["dev-1"]["downgrade"] is True
    assert wait_for(lambda: device.pipelines["air_quality"].bundle.version == "v2")
    close(attacker)


def test_device_accepts_only_the_operators_ed25519_signature(ed25519_fleet):
    broker, receiver, device, tmp_path, seen, key, keys = ed25519_fleet
    base = receiver.running["air_quality"].release
    new = _bundle(tmp_path, "v2", base + 1)
    shared = b"0123456789abcdef0123456789abcdef"  # the old scheme: refused by this device
    report = sender.publish_rollout(broker.url, new.directory, ["dev-1"], shared).reports["dev-1"]
    assert report["code"] == "signature_invalid" and "ed25519" in report["reason"]
    generate_key_pair(tmp_path / "other.key", tmp_path / "other.pub")
    stranger = load_signing_key(tmp_path / "other.key")
    report = sender.publish_rollout(broker.url, new.directory, ["dev-1"], stranger).reports["dev-1"]
    assert report["code"] == "signature_invalid" and "does not trust" in report["reason"]
    report = sender.publish_rollout(broker.url, new.directory, ["dev-1"], None).reports["dev-1"]
    assert report["code"] == "signature_missing"
    _still_runs(seen, "v1")
    result = sender.publish_rollout(broker.url, new.directory, ["dev-1"], key, timeout=20)
    assert result.ok and result.reports["dev-1"]["key_id"] == key.key_id


def _receiver(tmp_path, key, release=100):
    return bare_receiver(tmp_path, old=_bundle(tmp_path, "v1", release, seed=0), key=key)


def _deliver(receiver, rollout_id, offer, chunks) -> None:
    receiver.handle(topics.rollout_offer_topic("dev-1", rollout_id), json.dumps(offer).encode())
    for index, chunk in enumerate(chunks):
        receiver.handle(topics.rollout_chunk_topic("dev-1", rollout_id, index), chunk)


def test_key_rotation_and_revocation_by_editing_the_devices_key_file(tmp_path):
    old_id = generate_key_pair(tmp_path / "old.key", tmp_path / "old.pub")
    new_id = generate_key_pair(tmp_path / "new.key", tmp_path / "new.pub")
    both = tmp_path / "trusted.pub"  # during rotation the device trusts both public keys
    both.write_bytes((tmp_path / "old.pub").read_bytes() + (tmp_path / "new.pub").read_bytes())
    assert set(load_verify_keys(both).public) == {old_id, new_id}
    receiver, reports = _receiver(tmp_path, load_verify_keys(both))
    for number, name in enumerate(("old", "new"), start=1):
        bundle = _bundle(tmp_path, f"r{number}", 100 + number)
        offer, chunks = sender.build_offer(bundle, load_signing_key(tmp_path / f"{name}.key"), 1024)
        _deliver(receiver, f"rot{number}", offer, chunks)
        assert reports[-1]["state"] == "accepted", reports[-1]
    # the old key is revoked: the device's file now holds only the new public key
    revoked, reports = _receiver(tmp_path / "later", load_verify_keys(tmp_path / "new.pub"))
    offer, chunks = sender.build_offer(
        _bundle(tmp_path, "r3", 200), load_signing_key(tmp_path / "old.key"), 1024
    )
    _deliver(revoked, "rot3", offer, chunks)
    assert reports[-1]["code"] == "signature_invalid" and old_id in reports[-1]["reason"]


def test_downgrade_permission_is_bound_to_one_device_and_expires(tmp_path, monkeypatch):
    generate_key_pair(tmp_path / "ops.key", tmp_path / "ops.pub")
    key = load_signing_key(tmp_path / "ops.key")
    receiver, reports = _receiver(tmp_path, load_verify_keys(tmp_path / "ops.pub"), release=500)
    older = _bundle(tmp_path, "old", 400)
    offer, chunks = sender.build_offer(older, key, 1024, downgrade_device="dev-2")
    _deliver(receiver, "other-device", offer, chunks)
    assert reports[-1]["code"] == "rollback" and "another device" in reports[-1]["reason"]
    forged = {**offer, "downgrade": {**offer["downgrade"], "device": "dev-1"}}
    _deliver(receiver, "forged", forged, chunks)  # the permission is signed: editing it fails
    assert reports[-1]["code"] == "signature_invalid"
    offer, chunks = sender.build_offer(
        older, key, 1024, downgrade_device="dev-1", downgrade_valid_s=-1
    )
    _deliver(receiver, "expired", offer, chunks)
    assert reports[-1]["code"] == "rollback" and "expired" in reports[-1]["reason"]
    offer, chunks = sender.build_offer(older, key, 1024, downgrade_device="dev-1")
    _deliver(receiver, "granted", offer, chunks)
    assert reports[-1]["state"] == "accepted" and reports[-1]["release"] == 400


def test_key_files_are_checked_for_what_they_are(tmp_path, capsys):
    assert main(["rollout-keygen", "--out", str(tmp_path / "ops"), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert os.stat(made["private_key"]).st_mode & 0o777 == 0o600
    assert main(["rollout-keygen", "--out", str(tmp_path / "ops")]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="PRIVATE key"):
        load_verify_keys(tmp_path / "ops.key")  # a device must never get the private key
    with pytest.raises(ConfigError, match="public key"):
        load_signing_key(tmp_path / "ops.pub")
    os.chmod(tmp_path / "ops.key", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_signing_key(tmp_path / "ops.key")
