"""Rollout hardening (issue #20 rows 8–10): each test failed on the code before its fix.

Real mosquitto and the real device runtime (the ``fleet`` fixture of ``test_ops_rollout``) where a
message must travel; a bare :class:`RolloutReceiver` where only the receiver's bookkeeping matters.
"""

from __future__ import annotations

import json
import time

import test_ops_rollout
from ops_fixtures import air_quality_bundle, aq_targets, close, connect, tiny_model
from test_ops_rollout import KEY, _publish_raw, _still_runs, _wait_report, bare_receiver

from device_sim.bundle import load_bundle, save_manifest
from device_sim.mqtt import rollout, topics
from ops import rollout as sender
from tests.fleet_fixtures import wait_for

fleet = test_ops_rollout.fleet  # mosquitto + the device runtime running air_quality v1


def test_reinstalling_same_model_bytes_installs_the_newly_signed_manifest(fleet):
    """Row 8: same model.tflite, new bundle.json (a recalibrated head) — the new manifest runs."""
    broker, receiver, device, tmp_path, seen = fleet
    first = air_quality_bundle(tmp_path / "v2", tiny_model(seed=1), version="v2")
    assert sender.publish_rollout(broker.url, first.directory, ["dev-1"], KEY, timeout=20).ok
    recalibrated = air_quality_bundle(tmp_path / "v2b", tiny_model(seed=1), version="v2")
    targets = aq_targets()
    targets[0]["mean"] = 7.5  # the operator fixed the CO decoding, model bytes unchanged
    recalibrated.head = {**recalibrated.head, "targets": targets}
    save_manifest(recalibrated)
    assert recalibrated.model_sha256 == first.model_sha256
    result = sender.publish_rollout(broker.url, recalibrated.directory, ["dev-1"], KEY, timeout=20)
    report = result.reports["dev-1"]
    assert report["state"] in ("accepted", "running"), report
    running = receiver.running["air_quality"]
    assert running.head["targets"][0]["mean"] == 7.5
    stored = rollout.current_bundle_dir(tmp_path / "models", "air_quality")
    assert load_bundle(stored).head["targets"][0]["mean"] == 7.5
    # and the device runtime itself uses it from its next window on
    assert wait_for(
        lambda: device.pipelines["air_quality"].bundle.head["targets"][0]["mean"] == 7.5
    )


def test_reserved_version_name_is_refused_and_the_device_keeps_its_model(fleet):
    """Row 9: a bundle whose version is ``current`` must not become the ``current`` folder."""
    broker, receiver, device, tmp_path, seen = fleet
    bad = air_quality_bundle(tmp_path / "cur", tiny_model(seed=1), version="current")
    result = sender.publish_rollout(broker.url, bad.directory, ["dev-1"], KEY, timeout=10)
    report = result.reports["dev-1"]
    assert report["state"] == "refused" and report["code"] == "version_invalid", report
    _still_runs(seen, "v1")
    # rollouts keep working afterwards
    good = air_quality_bundle(tmp_path / "v3", tiny_model(seed=1), version="v3")
    assert sender.publish_rollout(broker.url, good.directory, ["dev-1"], KEY, timeout=20).ok
    assert rollout.current_bundle_dir(tmp_path / "models", "air_quality").name == "v3"


def test_non_ascii_signature_is_reported_as_invalid(fleet):
    """Row 9: a signature that is not ASCII raised TypeError in compare_digest: no report."""
    broker, receiver, device, tmp_path, seen = fleet
    new = air_quality_bundle(tmp_path / "v2", tiny_model(seed=1), version="v2")
    offer, chunks = sender.build_offer(new, KEY, 1024)
    _publish_raw(broker, {**offer, "signature": "é" * 64}, chunks)
    report = _wait_report(receiver)
    assert report["state"] == "refused" and report["code"] == "signature_invalid", report
    _still_runs(seen, "v1")


class CrashingDevice:
    """A device runtime failing in a way nobody planned for."""

    def request_model_swap(self, task, bundle) -> None:
        raise RuntimeError("interpreter arena exhausted")


def test_any_exception_in_the_rollout_path_becomes_a_refusal_report(tmp_path):
    """Row 9: only ``Refused`` was caught; anything else left the operator without an answer."""
    receiver, reports = bare_receiver(tmp_path, CrashingDevice())
    new = air_quality_bundle(tmp_path / "v2", tiny_model(seed=1), version="v2")
    offer, chunks = sender.build_offer(new, None, 1024)
    receiver.handle(topics.rollout_offer_topic("dev-1", "r1"), json.dumps(offer).encode())
    for index, chunk in enumerate(chunks):
        receiver.handle(topics.rollout_chunk_topic("dev-1", "r1", index), chunk)
    assert reports and reports[-1]["state"] == "refused", reports
    assert reports[-1]["code"] == "internal_error"
    assert "arena exhausted" in reports[-1]["reason"]
    assert receiver.running["air_quality"].version == "v1"
    assert not any(p.name == "v2" for p in (tmp_path / "models" / "air_quality").iterdir())


def test_zero_byte_chunks_are_refused_at_once_over_mosquitto(fleet):
    """Row 10: empty chunks did not count toward any limit; 200,000 of them held +16 MB."""
    broker, receiver, device, tmp_path, seen = fleet
    client, rc = connect(broker.port)
    assert rc == 0
    for index in range(3):  # chunks only, no offer: nothing a valid rollout ever sends
        topic = topics.rollout_chunk_topic("dev-1", "emptychunks1", index)
        client.publish(topic, b"", qos=1).wait_for_publish(5)
    close(client)
    assert wait_for(lambda: any(r["rollout_id"] == "emptychunks1" for r in receiver.reports))
    time.sleep(0.3)  # the later chunks of it have arrived by now
    mine = [r for r in receiver.reports if r["rollout_id"] == "emptychunks1"]
    assert len(mine) == 1 and mine[0]["code"] == "chunk_invalid", mine  # one refusal, rest ignored
    assert receiver.pending_bytes == 0


def test_tiny_chunks_count_toward_the_size_limit(tmp_path):
    """Row 10: 1-byte chunks are charged as a minimum chunk, so their number is bounded too."""
    receiver, reports = bare_receiver(tmp_path, max_bundle_bytes=4096)
    refused_at = None
    for index in range(200):
        receiver.handle(topics.rollout_chunk_topic("dev-1", "tiny", index), b"x")
        if reports and refused_at is None:
            refused_at = index
    # 4096 bytes hold at most 16 chunks of the sender's minimum size (256 bytes)
    assert refused_at is not None and refused_at <= 4096 // rollout.MIN_CHUNK_BYTES + 1
    assert len(reports) == 1 and reports[0]["code"] in ("too_large", "chunk_invalid")
    assert receiver.pending_bytes == 0


def test_chunk_index_beyond_the_offer_is_refused(tmp_path):
    receiver, reports = bare_receiver(tmp_path)
    new = air_quality_bundle(tmp_path / "v2", tiny_model(seed=1), version="v2")
    offer, chunks = sender.build_offer(new, None, 1024)
    receiver.handle(topics.rollout_offer_topic("dev-1", "r1"), json.dumps(offer).encode())
    receiver.handle(topics.rollout_chunk_topic("dev-1", "r1", offer["chunks"] + 5), chunks[0])
    assert reports and reports[-1]["code"] == "chunk_invalid"
    assert receiver.pending_bytes == 0


def test_a_rollout_whose_chunks_stop_arriving_expires(tmp_path, monkeypatch):
    """Row 10: a pending rollout never expired; now it is refused as incomplete after a while."""
    clock = [1000.0]
    monkeypatch.setattr(rollout.time, "monotonic", lambda: clock[0])
    receiver, reports = bare_receiver(tmp_path)
    new = air_quality_bundle(tmp_path / "v2", tiny_model(seed=1), version="v2")
    offer, chunks = sender.build_offer(new, None, 512)
    assert len(chunks) > 1
    receiver.handle(topics.rollout_offer_topic("dev-1", "slow"), json.dumps(offer).encode())
    receiver.handle(topics.rollout_chunk_topic("dev-1", "slow", 0), chunks[0])
    assert receiver.pending_bytes > 0 and not reports
    clock[0] += rollout.PENDING_TIMEOUT_S + 1
    receiver.expire()
    assert reports and reports[-1]["rollout_id"] == "slow"
    assert reports[-1]["code"] == "incomplete" and "within" in reports[-1]["reason"]
    assert receiver.pending_bytes == 0
