"""Model rollout, the operator's side: sign a bundle, send it to devices, collect their outcomes.

The protocol and the device's side (verification, anti-rollback, the atomic swap) are in
:mod:`device_sim.mqtt.rollout`; this module only sends. ``tinyfleet rollout`` calls
:func:`publish_rollout`. The operator needs the broker's operator account (``--username``/
``--password``, ``--ca`` for TLS): a device account may publish under its own id only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_sim.bundle import Bundle, load_bundle, sha256_bytes
from device_sim.errors import ConfigError, TinyfleetError
from device_sim.mqtt import topics
from device_sim.mqtt.rollout import MIN_CHUNK_BYTES, PROTOCOL, signed_text, utc_timestamp
from device_sim.mqtt.rollout_keys import HMAC_ALG, SigningKey

if TYPE_CHECKING:
    from device_sim.mqtt.client import Credentials

log = logging.getLogger(__name__)

DOWNGRADE_VALID_S = 3600  # how long an operator's signed downgrade permission can be used
CHUNK_BYTES = 32 * 1024  # per MQTT message; small enough for constrained brokers/gateways


class RolloutError(TinyfleetError):
    """A rollout cannot be sent (bad bundle, key, devices) or the broker is unreachable."""


def sign(
    key: bytes | SigningKey,
    task: str,
    manifest_sha256: str,
    model_sha256: str,
    downgrade: Mapping[str, Any] | None = None,
) -> str:
    return _signing_key(key).sign(signed_text(task, manifest_sha256, model_sha256, downgrade))


def _signing_key(key: bytes | SigningKey) -> SigningKey:
    return key if isinstance(key, SigningKey) else SigningKey(HMAC_ALG, secret=key)


def build_offer(
    bundle: Bundle,
    key: bytes | SigningKey | None,
    chunk_bytes: int,
    *,
    downgrade_device: str | None = None,
    downgrade_valid_s: int = DOWNGRADE_VALID_S,
) -> tuple[dict, list[bytes]]:
    """The offer message and the model chunks for ``bundle`` (signed when ``key`` is given).

    ``downgrade_device`` adds a permission, for that device only and ``downgrade_valid_s``
    seconds, to install the bundle although its release is older than the device's.
    """
    model = bundle.model_bytes()
    manifest = bundle.manifest_path.read_text()
    manifest_digest = sha256_bytes(manifest.encode())
    chunks = [model[i : i + chunk_bytes] for i in range(0, len(model), chunk_bytes)]
    offer = {
        "protocol": PROTOCOL,
        "task": bundle.task,
        "name": bundle.name,
        "version": bundle.version,
        "model_sha256": bundle.model_sha256,
        "model_bytes": len(model),
        "manifest": manifest,
        "manifest_sha256": manifest_digest,
        "chunks": len(chunks),
        "chunk_bytes": chunk_bytes,
        "release": bundle.release,
        "downgrade": None,
        "signature_alg": None,
        "key_id": None,
        "signature": None,
        "sent": utc_timestamp(),
    }
    if downgrade_device is not None:
        until = int(time.time()) + int(downgrade_valid_s)
        offer["downgrade"] = {"device": topics.check_id(downgrade_device), "until": until}
    if key:
        signing = _signing_key(key)
        offer["signature_alg"] = signing.alg
        offer["key_id"] = signing.key_id
        offer["signature"] = sign(
            signing, bundle.task, manifest_digest, bundle.model_sha256, offer["downgrade"]
        )
    return offer, chunks


@dataclass
class RolloutResult:
    """Per device, the outcome: ``running`` (the device's retained model identity now shows the new
    sha256), ``accepted`` (verified and stored, swap due at its next window), ``refused`` (with
    ``code``/``reason``; the old model keeps running) or ``no_answer``."""

    rollout_id: str
    bundle: dict[str, str]
    reports: dict[str, dict[str, Any]]

    def devices_in(self, *states: str) -> list[str]:
        return sorted(d for d, r in self.reports.items() if r.get("state") in states)

    @property
    def ok(self) -> bool:
        """True when no device refused or stayed silent."""
        return len(self.devices_in("running", "accepted")) == len(self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "bundle": self.bundle,
            "running": self.devices_in("running"),
            "accepted": self.devices_in("accepted"),
            "refused": self.devices_in("refused"),
            "no_answer": self.devices_in("no_answer"),
            "devices": self.reports,
        }


def _settled(report: dict[str, Any] | None) -> bool:
    return report is not None and report.get("state") in ("running", "refused")


def publish_rollout(
    broker_url: str,
    bundle_dir: str | Path,
    device_ids: Iterable[str],
    key: bytes | SigningKey | None = None,
    *,
    credentials: Credentials | None = None,
    timeout: float = 30.0,
    chunk_bytes: int = CHUNK_BYTES,
    downgrade: bool = False,
) -> RolloutResult:
    """Send the bundle in ``bundle_dir`` to ``device_ids``; wait up to ``timeout`` s for outcomes.

    The bundle is verified before anything is sent. A device is settled when it refused or when its
    retained ``tinyfleet/<device>/<task>/model`` identity shows the new model; devices that only
    accepted by then are reported as ``accepted`` (the swap happens at their next window), silent
    ones as ``no_answer`` (an offline device with a persistent session still gets the rollout when
    it reconnects; its report then lands on the retained state topic).

    ``downgrade`` sends each device a signed permission (valid :data:`DOWNGRADE_VALID_S`) to go
    back to this bundle although its release is older than what the device runs.
    """
    from device_sim.mqtt.client import Credentials, detect_protocol, new_client, parse_broker_url

    devices = [topics.check_id(d) for d in device_ids]
    if not devices:
        raise ConfigError("no devices given: pass --devices ID[,ID…]")
    if chunk_bytes < MIN_CHUNK_BYTES:
        raise ConfigError(f"chunk size must be at least {MIN_CHUNK_BYTES} bytes")
    bundle = load_bundle(bundle_dir)
    if downgrade and not key:
        raise ConfigError("--downgrade needs --key: devices only accept a signed downgrade")
    offer, chunks = build_offer(bundle, key, chunk_bytes)
    rollout_id = uuid.uuid4().hex[:12]
    address = parse_broker_url(broker_url)
    credentials = (credentials or Credentials()).check()
    protocol = detect_protocol(address, credentials)
    client = new_client(f"tinyfleet-rollout-{rollout_id}", address, credentials, protocol)
    reports: dict[str, dict[str, Any]] = {}
    now_running: dict[str, dict[str, Any]] = {}
    changed = threading.Condition()
    connected = threading.Event()
    subscribed = threading.Event()
    problems: list[str] = []
    watched = [topics.rollout_state_topic(d) for d in devices]
    watched += [topics.model_topic(d, bundle.task) for d in devices]
    pending_subacks = {"n": 0}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            problems.append(str(reason_code))
        else:
            pending_subacks["n"] = len(watched)
            for topic in watched:
                client.subscribe(topic, 1)
        connected.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            problems.append("subscribing to the devices' state topics was refused (check the ACL)")
        pending_subacks["n"] -= 1
        if pending_subacks["n"] <= 0:
            subscribed.set()

    def on_message(client, userdata, message) -> None:
        try:
            data = json.loads(message.payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if not isinstance(data, dict):
            return
        parsed = topics.parse_topic(message.topic)
        with changed:
            if parsed is not None and parsed.kind == "model":
                model = data.get("model") or {}
                if model.get("sha256") == bundle.model_sha256:
                    now_running[parsed.device] = model
            elif data.get("rollout_id") == rollout_id:  # not a retained report of earlier rollouts
                reports[str(data.get("device"))] = data
            changed.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise RolloutError(f"cannot reach the MQTT broker at {address.url}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(10) or problems:
            why = ", ".join(problems) or "no answer"
            raise RolloutError(
                f"the broker at {address.url} refused the connection ({why}): pass operator "
                "credentials (--username/--password, --ca for TLS)"
            )
        if not subscribed.wait(10) or problems:
            raise RolloutError(f"{problems[0] if problems else 'no SUBACK'} at {address.url}")
        for device in devices:
            if downgrade:  # signed for this device only
                offer, chunks = build_offer(bundle, key, chunk_bytes, downgrade_device=device)
            infos = [
                client.publish(
                    topics.rollout_offer_topic(device, rollout_id), json.dumps(offer), qos=1
                )
            ]
            for index, chunk in enumerate(chunks):
                infos.append(
                    client.publish(
                        topics.rollout_chunk_topic(device, rollout_id, index), chunk, qos=1
                    )
                )
            for info in infos:
                info.wait_for_publish(timeout)
                if not info.is_published():
                    raise RolloutError(f"the broker did not acknowledge the rollout to {device}")
        log.info(
            "rollout %s: %s %s (%d bytes, %d chunks) sent to %d device(s)",
            rollout_id,
            bundle.task,
            bundle.version,
            offer["model_bytes"],
            len(chunks),
            len(devices),
        )
        deadline = time.monotonic() + timeout

        def outcome(device: str) -> dict[str, Any] | None:
            report = reports.get(device)
            if report and report.get("state") == "accepted" and device in now_running:
                return {**report, "state": "running", "running": now_running[device]}
            return report

        with changed:
            while not all(_settled(outcome(d)) for d in devices):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                changed.wait(left)
            final = {d: outcome(d) for d in devices}
    finally:
        client.disconnect()
        client.loop_stop()
    for device, report in final.items():
        if report is None:
            final[device] = {
                "state": "no_answer",
                "device": device,
                "reason": f"no report within {timeout:g} s: the device is offline, runs without "
                "--model-dir, has another id, or this MQTT account may not publish rollouts "
                "(use an operator account)",
            }
        elif report["state"] == "accepted":
            report["note"] = f"swap pending: not running the new model within {timeout:g} s"
    return RolloutResult(rollout_id, bundle.identity(), final)
