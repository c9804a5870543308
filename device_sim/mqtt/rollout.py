"""Model rollout over MQTT: an operator sends a bundle, each device verifies it and swaps models.

This module is the protocol and the device's side; the operator's sender is :mod:`ops.rollout`.

Why over MQTT: devices already hold a (persistent, authenticated) broker connection; no second
channel, port or web server is needed on a gateway. Why so many checks: a device must never run a
model that differs from the one that was measured, so anything unexpected is refused and the old
model keeps running.

Protocol (all QoS 1; ``<rid>`` is a random rollout id)::

    tinyfleet/<device>/rollout/<rid>/offer      operator → device  JSON: manifest text, sha256s,
                                                                   sizes, chunk count, signature
    tinyfleet/<device>/rollout/<rid>/chunk/<i>  operator → device  raw model bytes, i = 0 … n-1
    tinyfleet/<device>/rollout/state            device → operator  retained JSON: accepted / refused
    tinyfleet/<device>/<task>/model             device → all       retained identity it now runs

The device checks, in order: size, sha256 of the model and of the manifest, the signature
(required when the device has a key: Ed25519 with the operator's public key, or the older shared
HMAC-SHA256 secret — see ``rollout_keys.py``), the bundle schema version, that the manifest
describes this model and the offered task, that the device runs that task, that the bundle's
``release`` is not older than the running one (anti-rollback; an operator-signed, per-device,
expiring ``downgrade`` permission overrides it), and that the model loads in the interpreter with
the shapes its manifest and front end promise. Only then is the bundle
written atomically to ``<model_dir>/<task>/<version>/`` (``current`` links to it) and
``request_model_swap(task, bundle)`` is called; the device applies it between two windows and
then publishes the new identity on its retained ``model`` topic. The operator waits for that
identity: it, not the device's "accepted", is the proof of what the device now runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from device_sim.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    SCHEMA_VERSION,
    Bundle,
    load_bundle,
    sha256_bytes,
)
from device_sim.errors import BundleError, TinyfleetError
from device_sim.mqtt import topics
from device_sim.mqtt.rollout_keys import (
    HMAC_ALG,
    SignatureProblem,
    VerifyKeys,
    load_verify_keys,
)

log = logging.getLogger(__name__)

PROTOCOL = "tinyfleet-rollout/1"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024  # a micromodel is KBs; anything near this is a mistake
CURRENT_LINK = "current"
MAX_PENDING = 4  # rollouts being received at once; the oldest incomplete one is dropped
MIN_CHUNK_BYTES = 256  # the sender's smallest chunk; smaller chunks are charged as this many bytes
PENDING_TIMEOUT_S = (
    600.0  # a rollout whose chunks stop arriving is refused as incomplete after this
)
MAX_VERSION_CHARS = 128  # a bundle version becomes a folder name
RESERVED_NAMES = frozenset({CURRENT_LINK})  # folder names of <model_dir>/<task>/ not for versions
KEY_FILE_ENV = "TINYFLEET_ROLLOUT_KEY_FILE"


class SwappableDevice(Protocol):
    """What the receiver needs from the device runtime (``device_sim/device.py``)."""

    def request_model_swap(self, task: str, bundle: Bundle) -> Any: ...


def signed_text(
    task: str,
    manifest_sha256: str,
    model_sha256: str,
    downgrade: Mapping[str, Any] | None = None,
) -> bytes:
    """What a signature covers: the task and the hashes of both bundle files (the manifest holds
    the ``release``), plus, for a downgrade, the one device and the time (epoch s) it may be used
    until — so a captured downgrade cannot be replayed to other devices or later."""
    text = f"{PROTOCOL}\n{task}\n{manifest_sha256}\n{model_sha256}\n"
    if downgrade is not None:
        text += f"downgrade\n{downgrade['device']}\n{int(downgrade['until'])}\n"
    return text.encode()


def _verify_keys(key: bytes | VerifyKeys) -> VerifyKeys:
    return key if isinstance(key, VerifyKeys) else VerifyKeys(HMAC_ALG, secret=key)


def utc_timestamp() -> str:
    """Now, UTC, to the second: ``2026-01-31T12:00:00Z`` (offers' ``sent``, reports' ``ts``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- device side ------------------------------------------------------------------------------


class Refused(Exception):
    """Why a rollout is refused: a short ``code`` for programs and a ``reason`` for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class _Pending:
    rollout_id: str
    started: float
    offer: dict[str, Any] | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    charged_bytes: int = 0  # memory held, each chunk counted as at least MIN_CHUNK_BYTES


def current_bundle_dir(model_dir: str | Path, task: str) -> Path | None:
    """The bundle folder a device should run for ``task`` after a restart (None if never rolled)."""
    link = Path(model_dir) / task / CURRENT_LINK
    return link.resolve() if link.exists() else None


def rolled_out_bundles(bundles: Iterable[Bundle], model_dir: str | Path) -> list[Bundle]:
    """``bundles`` with each task replaced by its last rolled-out bundle in ``model_dir``, if any.

    Why: a device restarted with its original ``--bundle`` must keep running the model it was
    rolled out, not fall back silently. A stored bundle that no longer verifies is skipped with a
    warning (the given bundle runs).
    """
    result = []
    for bundle in bundles:
        stored = current_bundle_dir(model_dir, bundle.task)
        if stored is not None:
            try:
                rolled = load_bundle(stored)
            except BundleError as exc:
                log.warning("ignoring the rolled-out %s bundle in %s: %s", bundle.task, stored, exc)
            else:
                if rolled.task == bundle.task:
                    log.info(
                        "%s: running the rolled-out model %s (not %s)",
                        bundle.task,
                        rolled.version,
                        bundle.version,
                    )
                    bundle = rolled
        result.append(bundle)
    return result


def enable_rollout(
    device, model_dir: str | Path, *, key: bytes | VerifyKeys | None = None
) -> RolloutReceiver:
    """Let a :class:`device_sim.device.Device` receive rollouts; returns the receiver.

    ``key`` None reads the key file named by ``$TINYFLEET_ROLLOUT_KEY_FILE`` if set (how a device
    service gets its key without a command-line flag): the operator's Ed25519 public key(s) or a
    shared HMAC secret; with a key only validly signed rollouts are accepted. Reports go out
    retained through the device's publisher, so one written while the connection is down is sent
    after the reconnect.
    """
    if key is None and os.environ.get(KEY_FILE_ENV):
        verify_keys = load_verify_keys(os.environ[KEY_FILE_ENV])
        key = verify_keys.secret if verify_keys.alg == HMAC_ALG else verify_keys
    log.info(
        "device %s accepts %s rollouts into %s",
        device.device_id,
        "signed" if key else "unsigned (sha256-checked)",
        model_dir,
    )

    def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        device.publisher.set_retained(topic, payload)

    running = {task: pipeline.bundle for task, pipeline in device.pipelines.items()}
    receiver = RolloutReceiver(device.device_id, model_dir, device, publish, running, key=key)
    device.add_message_handler(receiver.topic_filter, receiver.handle)
    return receiver


class RolloutReceiver:
    """The device side: collects offers and chunks, verifies them, stores and swaps the model.

    ``publish(topic, payload, qos, retain)`` sends the state report (the device's MQTT client).
    ``running`` maps each task the device runs to its current bundle; it is updated after each
    accepted swap. ``key`` makes a valid signature mandatory: :class:`VerifyKeys` (Ed25519 public
    keys) or bytes (a shared HMAC secret). Call :meth:`handle` for
    every message on :attr:`topic_filter`; it is safe to call from the MQTT network thread.
    """

    def __init__(
        self,
        device_id: str,
        model_dir: str | Path,
        device: SwappableDevice,
        publish: Callable[[str, bytes, int, bool], Any],
        running: Mapping[str, Bundle],
        *,
        key: bytes | VerifyKeys | None = None,
        max_bundle_bytes: int = MAX_BUNDLE_BYTES,
    ) -> None:
        self.device_id = topics.check_id(device_id)
        self.model_dir = Path(model_dir)
        self.device = device
        self.publish = publish
        self.running: dict[str, Bundle] = dict(running)
        self.key = key
        self._verifier = _verify_keys(key) if key is not None else None
        self.max_bundle_bytes = max_bundle_bytes
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self.reports: list[dict[str, Any]] = []  # every state report sent, newest last
        self._finished: deque[str] = deque(maxlen=64)  # rollout ids already decided

    @property
    def topic_filter(self) -> str:
        return topics.rollout_filter(self.device_id)

    @property
    def max_chunks(self) -> int:
        """The most chunks one rollout may have (the sender's chunks are >= MIN_CHUNK_BYTES)."""
        return -(-self.max_bundle_bytes // MIN_CHUNK_BYTES)

    @property
    def pending_bytes(self) -> int:
        """Memory held by rollouts still being received (bytes, small chunks charged as
        MIN_CHUNK_BYTES); bounded by ``2 * max_bundle_bytes``."""
        return sum(p.charged_bytes for p in self._pending.values())

    def handle(self, topic: str, payload: bytes) -> None:
        """Take one message from the rollout topic tree (anything else is ignored).

        Whatever goes wrong, the outcome is a report: an unexpected exception is refused as
        ``internal_error`` (with its text) and the old model keeps running.
        """
        parsed = topics.parse_topic(topic)
        if parsed is None or parsed.device != self.device_id or parsed.rollout_id is None:
            return  # not an offer or chunk for this device (e.g. its own retained state report)
        rollout_id = parsed.rollout_id
        with self._lock:
            self._expire_locked()
            if rollout_id in self._finished:
                return  # a QoS 1 re-delivery, or chunks of a rollout already refused
            try:
                if parsed.kind == "rollout_offer":
                    self._on_offer(rollout_id, payload)
                else:
                    self._on_chunk(rollout_id, parsed.chunk, payload)
                pending = self._pending.get(rollout_id)
                if pending and pending.offer and len(pending.chunks) == pending.offer["chunks"]:
                    del self._pending[rollout_id]
                    self._complete(pending)
            except Exception as exc:  # a bug or an input nobody foresaw: still answer
                pending = self._pending.pop(rollout_id, None)
                self._refuse_unexpected(rollout_id, pending.offer if pending else None, exc)

    def expire(self) -> None:
        """Refuse (``incomplete``) rollouts whose chunks stopped arriving PENDING_TIMEOUT_S ago.

        Also runs on every rollout message; call it from a timer to free memory sooner.
        """
        with self._lock:
            self._expire_locked()

    def _expire_locked(self) -> None:
        cutoff = time.monotonic() - PENDING_TIMEOUT_S
        for pending in [p for p in self._pending.values() if p.started < cutoff]:
            del self._pending[pending.rollout_id]
            self._report_refusal(
                pending.rollout_id,
                pending.offer,
                Refused(
                    "incomplete",
                    f"not all chunks arrived within {PENDING_TIMEOUT_S:g} s "
                    f"({len(pending.chunks)} received)",
                ),
            )

    def _refuse_unexpected(
        self, rollout_id: str, offer: Mapping[str, Any] | None, exc: Exception
    ) -> None:
        log.exception("rollout %s: unexpected failure", rollout_id)
        self._report_refusal(
            rollout_id, offer, Refused("internal_error", f"{type(exc).__name__}: {exc}")
        )

    def _entry(self, rollout_id: str) -> _Pending:
        if rollout_id not in self._pending:
            if len(self._pending) >= MAX_PENDING:
                oldest = min(self._pending.values(), key=lambda p: p.started)
                del self._pending[oldest.rollout_id]
                self._report_refusal(
                    oldest.rollout_id,
                    oldest.offer,
                    Refused("incomplete", "newer rollouts arrived before all chunks did"),
                )
            self._pending[rollout_id] = _Pending(rollout_id, time.monotonic())
        return self._pending[rollout_id]

    def _on_offer(self, rollout_id: str, payload: bytes) -> None:
        try:
            offer = json.loads(payload)
            if not isinstance(offer, dict) or offer.get("protocol") != PROTOCOL:
                raise Refused("protocol", f"not a {PROTOCOL} offer")
            for name, kind in (
                ("task", str),
                ("model_sha256", str),
                ("manifest", str),
                ("manifest_sha256", str),
                ("model_bytes", int),
                ("chunks", int),
            ):
                value = offer.get(name)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise Refused("offer_invalid", f"the offer lacks a valid {name!r}")
            if not 0 < offer["model_bytes"] <= self.max_bundle_bytes:
                raise Refused(
                    "too_large",
                    f"model of {offer['model_bytes']} bytes is outside 1…{self.max_bundle_bytes}",
                )
            most = -(-offer["model_bytes"] // MIN_CHUNK_BYTES)
            if not 0 < offer["chunks"] <= most:
                raise Refused(
                    "offer_invalid",
                    f"chunk count {offer['chunks']} is impossible for {offer['model_bytes']} bytes "
                    f"in chunks of at least {MIN_CHUNK_BYTES} bytes",
                )
            early = self._pending.get(rollout_id)
            if early and any(index >= offer["chunks"] for index in early.chunks):
                raise Refused("chunk_invalid", "a chunk index beyond the offer's chunk count")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._pending.pop(rollout_id, None)
            self._report_refusal(rollout_id, None, Refused("offer_invalid", "offer is not JSON"))
            return
        except Refused as refusal:
            self._pending.pop(rollout_id, None)
            self._report_refusal(rollout_id, offer if isinstance(offer, dict) else None, refusal)
            return
        self._entry(rollout_id).offer = offer

    def _on_chunk(self, rollout_id: str, index: int, payload: bytes) -> None:
        pending = self._entry(rollout_id)
        if index in pending.chunks:
            return  # a QoS 1 duplicate
        limit = pending.offer["chunks"] if pending.offer else self.max_chunks
        problem = None
        if not payload:
            problem = Refused("chunk_invalid", f"chunk {index} is empty")
        elif index >= limit:
            problem = Refused("chunk_invalid", f"chunk index {index} is beyond {limit - 1}")
        else:
            pending.charged_bytes += max(len(payload), MIN_CHUNK_BYTES)
            if pending.charged_bytes > self.max_bundle_bytes + MIN_CHUNK_BYTES:
                problem = Refused(
                    "too_large",
                    f"more than {self.max_bundle_bytes} bytes of chunks (chunks under "
                    f"{MIN_CHUNK_BYTES} bytes count as {MIN_CHUNK_BYTES})",
                )
        if problem is not None:
            del self._pending[rollout_id]
            self._report_refusal(rollout_id, pending.offer, problem)
            return
        pending.chunks[index] = bytes(payload)
        # all rollouts together hold at most two bundles' worth: the oldest others make room
        while self.pending_bytes > 2 * self.max_bundle_bytes:
            others = [p for p in self._pending.values() if p is not pending]
            if not others:
                break
            oldest = min(others, key=lambda p: p.started)
            del self._pending[oldest.rollout_id]
            self._report_refusal(
                oldest.rollout_id,
                oldest.offer,
                Refused("incomplete", "newer rollouts needed the memory before all chunks came"),
            )

    def _complete(self, pending: _Pending) -> None:
        offer = pending.offer or {}
        try:
            if sorted(pending.chunks) != list(range(offer["chunks"])):
                raise Refused("incomplete", f"chunk indices {sorted(pending.chunks)} are not 0…n-1")
            model = b"".join(pending.chunks[i] for i in range(offer["chunks"]))
            bundle, created = self._verify_and_store(offer, model)
            try:
                self._swap(pending.rollout_id, offer, bundle)
            except Exception:
                if created:  # nothing half-installed stays behind
                    shutil.rmtree(bundle.directory, ignore_errors=True)
                raise
        except Refused as refusal:
            self._report_refusal(pending.rollout_id, offer, refusal)
        except Exception as exc:
            self._refuse_unexpected(pending.rollout_id, offer, exc)

    def _verify(self, offer: Mapping[str, Any], model: bytes) -> dict[str, Any]:
        if len(model) != offer["model_bytes"]:
            raise Refused(
                "size_mismatch", f"received {len(model)} bytes, offer says {offer['model_bytes']}"
            )
        digest = sha256_bytes(model)
        if digest != offer["model_sha256"]:
            raise Refused(
                "sha256_mismatch",
                f"model sha256 is {digest[:16]}…, offer says {offer['model_sha256'][:16]}…",
            )
        manifest_bytes = offer["manifest"].encode()
        manifest_digest = sha256_bytes(manifest_bytes)
        if manifest_digest != offer["manifest_sha256"]:
            raise Refused("sha256_mismatch", "bundle.json does not match its sha256 in the offer")
        downgrade = _downgrade_of(offer)
        if self._verifier is not None:
            signature = offer.get("signature")
            if not isinstance(signature, str):
                raise Refused(
                    "signature_missing",
                    "this device requires signed rollouts: send with --key (the device's key)",
                )
            text = signed_text(offer["task"], manifest_digest, digest, downgrade)
            try:
                self._verifier.verify(
                    offer.get("signature_alg"), offer.get("key_id"), signature, text
                )
            except SignatureProblem as problem:
                raise Refused(problem.code, problem.reason) from problem
        try:
            manifest = json.loads(manifest_bytes)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Refused("manifest_invalid", f"bundle.json is not JSON: {exc}") from exc
        if not isinstance(manifest, dict):
            raise Refused("manifest_invalid", "bundle.json is not a JSON object")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise Refused(
                "schema_mismatch",
                f"bundle schema version {manifest.get('schema_version')!r}; this device reads "
                f"version {SCHEMA_VERSION}: rebuild the bundle or update the device",
            )
        if manifest.get("model_sha256") != digest:
            raise Refused("sha256_mismatch", "bundle.json describes a different model.tflite")
        if manifest.get("task") != offer["task"]:
            raise Refused(
                "wrong_task",
                f"offer is for task {offer['task']!r} but the bundle is a {manifest.get('task')!r}"
                " model",
            )
        if offer["task"] not in self.running:
            raise Refused(
                "wrong_task",
                f"this device runs {', '.join(sorted(self.running)) or 'no task'}, not "
                f"{offer['task']!r}",
            )
        self._check_release(manifest, digest, downgrade, self.running[offer["task"]])
        version = manifest.get("version")
        if not isinstance(version, str) or not 0 < len(version) <= MAX_VERSION_CHARS:
            raise Refused(
                "version_invalid", f"the bundle version must be 1-{MAX_VERSION_CHARS} characters"
            )
        if _safe_dir_name(version, digest) in RESERVED_NAMES:
            raise Refused(
                "version_invalid",
                f"version {version!r} is reserved on devices (it names the link to the running "
                "model): rebuild the bundle with another version",
            )
        return manifest

    def _check_release(
        self,
        manifest: Mapping[str, Any],
        digest: str,
        downgrade: Mapping[str, Any] | None,
        running: Bundle,
    ) -> None:
        """Anti-rollback: a release older than the running one needs a downgrade permission for
        this device that has not expired (signed, on a device with a key)."""
        release = manifest.get("release", 0)
        if not isinstance(release, int) or isinstance(release, bool) or release < 0:
            raise Refused("manifest_invalid", f"release {release!r} is not an integer >= 0")
        if release >= running.release:
            return
        what = (
            f"release {release} is older than release {running.release} ({running.version}) "
            "that this device runs"
        )
        if downgrade is None:
            raise Refused(
                "rollback",
                f"{what}: refused as a possible replay; to go back on purpose send it with "
                "`tinyfleet rollout --downgrade` (signed by the operator)",
            )
        if downgrade["device"] != self.device_id:
            raise Refused("rollback", f"{what}; the downgrade permission is for another device")
        if downgrade["until"] < time.time():
            raise Refused("rollback", f"{what}; the downgrade permission has expired")
        log.warning("%s: downgrade permitted by the operator", what)

    def _verify_and_store(self, offer: Mapping[str, Any], model: bytes) -> tuple[Bundle, bool]:
        """Verify, then write the bundle to ``<model_dir>/<task>/<version>/``; returns it and
        whether the folder is new. ``current`` is switched only after the swap was accepted."""
        manifest = self._verify(offer, model)
        task_dir = self.model_dir / offer["task"]
        task_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=task_dir, prefix=".incoming-"))
        created = False
        try:
            staging.chmod(0o755)
            (staging / MODEL_FILE).write_bytes(model)
            (staging / MANIFEST_FILE).write_text(offer["manifest"])
            try:
                check_bundle_runs(load_bundle(staging))
            except BundleError as exc:
                raise Refused("bundle_invalid", str(exc).replace(str(staging), "bundle")) from exc
            final = task_dir / _safe_dir_name(
                str(manifest["version"]), digest=offer["model_sha256"]
            )
            if final.exists() and _existing_sha(final) != offer["model_sha256"]:
                raise Refused(
                    "version_conflict",
                    f"a different model with version {manifest['version']!r} is already stored",
                )
            if final.exists() and _existing_manifest(final) != offer["manifest"]:
                # same model bytes, a newly signed manifest (e.g. a recalibrated head): install it
                # beside the old one, so `current` never points at a half-replaced folder
                final = final.with_name(f"{final.name}~{offer['manifest_sha256'][:12]}")
            if final.exists() and _existing_manifest(final) == offer["manifest"]:
                shutil.rmtree(staging)  # exactly this bundle is already stored
            else:
                _fsync_dir_files(staging)
                os.rename(staging, final)
                created = True
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return load_bundle(final), created

    def _swap(self, rollout_id: str, offer: Mapping[str, Any], bundle: Bundle) -> None:
        previous = self.running.get(bundle.task)
        try:
            self.device.request_model_swap(bundle.task, bundle)
        except TinyfleetError as exc:
            raise Refused("swap_failed", f"the device refused the swap: {exc}") from exc
        try:
            _point_current(bundle.directory.parent, bundle.directory.name)
        except OSError as exc:  # e.g. a full disk: keep running the old model, say so
            if previous is not None:
                self.device.request_model_swap(previous.task, previous)
            raise Refused("swap_failed", f"could not record the new model: {exc}") from exc
        self.running[bundle.task] = bundle
        log.info(
            "rollout %s: %s model %s → %s",
            rollout_id,
            bundle.task,
            previous.version if previous else None,
            bundle.version,
        )
        self._report(
            rollout_id,
            offer,
            {
                "state": "accepted",
                "accepted": bundle.identity(),
                "release": bundle.release,
                "signed": self.key is not None,
                "key_id": offer.get("key_id") if self._verifier is not None else None,
                "downgrade": offer.get("downgrade") is not None,
            },
        )

    def _report_refusal(
        self, rollout_id: str, offer: Mapping[str, Any] | None, refusal: Refused
    ) -> None:
        task = (offer or {}).get("task")
        current = self.running.get(task) if isinstance(task, str) else None
        log.warning("rollout %s refused (%s): %s", rollout_id, refusal.code, refusal.reason)
        self._report(
            rollout_id,
            offer,
            {
                "state": "refused",
                "code": refusal.code,
                "reason": refusal.reason,
                "running": current.identity() if current else None,
            },
        )

    def _report(
        self, rollout_id: str, offer: Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> None:
        offer = offer or {}
        report = {
            "rollout_id": rollout_id,
            "device": self.device_id,
            "task": offer.get("task"),
            "offered": {
                "name": offer.get("name"),
                "version": offer.get("version"),
                "sha256": offer.get("model_sha256"),
            },
            **fields,
            "ts": utc_timestamp(),
        }
        self.reports.append(report)
        self._finished.append(rollout_id)
        try:
            self.publish(
                topics.rollout_state_topic(self.device_id), json.dumps(report).encode(), 1, True
            )
        except Exception:  # the report is lost, the decision stands; the operator times out
            log.exception("could not publish the rollout report")


def check_bundle_runs(bundle: Bundle) -> None:
    """Load the model in the interpreter and build the task runtime and front end, or BundleError.

    This is what the device will do at swap time; doing it first means a bad bundle is refused
    while the old model keeps running.
    """
    from device_sim.features.base import frontend_from_dict
    from device_sim.interpreter import Int8Model
    from device_sim.tasks import runtime_for

    Int8Model.from_bundle(bundle)
    runtime_for(bundle)
    frontend = frontend_from_dict(bundle.feature_config)
    expected = tuple(bundle.input.shape[1:])
    if tuple(frontend.feature_shape) != expected:
        raise BundleError(
            f"the front end makes features of shape {tuple(frontend.feature_shape)} but the model "
            f"takes {expected}: the bundle is inconsistent; rebuild it"
        )


def _downgrade_of(offer: Mapping[str, Any]) -> dict[str, Any] | None:
    """The offer's downgrade permission ``{"device": id, "until": epoch s}``, None, or Refused."""
    downgrade = offer.get("downgrade")
    if downgrade is None:
        return None
    if (
        not isinstance(downgrade, dict)
        or not isinstance(downgrade.get("device"), str)
        or not isinstance(downgrade.get("until"), int)
        or isinstance(downgrade.get("until"), bool)
    ):
        raise Refused("offer_invalid", "the downgrade permission must be {device, until}")
    return {"device": downgrade["device"], "until": downgrade["until"]}


def _safe_dir_name(version: str, digest: str) -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in version).lstrip(".")
    return name or digest[:16]


def _existing_sha(directory: Path) -> str | None:
    try:
        return sha256_bytes((directory / MODEL_FILE).read_bytes())
    except OSError:
        return None


def _existing_manifest(directory: Path) -> str | None:
    try:
        return (directory / MANIFEST_FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _fsync_dir_files(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _point_current(task_dir: Path, target: str) -> None:
    """Atomically make ``task_dir/current`` a symlink to ``target`` (survives a power cut)."""
    tmp = task_dir / f".{CURRENT_LINK}.{uuid.uuid4().hex[:8]}"
    os.symlink(target, tmp)
    os.replace(tmp, task_dir / CURRENT_LINK)
