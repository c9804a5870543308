"""The model bundle: the only thing that crosses stage boundaries.

A bundle is a folder holding ``model.tflite`` (full-integer int8) and ``bundle.json``. The manifest
says everything a device, the firmware exporter or an evaluator needs to use the model without the
training code: task, labels/threshold/targets, the feature front-end config, input/output quantization,
metrics (float vs int8), sizes, sparsity, provenance and the sha256 of ``model.tflite``.

Loading checks the schema version and the hash and fails loudly: a device must never run a model that
differs from the one that was measured. The format is documented in ``docs/bundle.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.atomic import atomic_write
from device_sim.errors import BundleError
from device_sim.version import __version__

SCHEMA_VERSION = 1
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "bundle.json"
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier at byte offset 4


def _task_names() -> tuple[str, ...]:
    """The tasks the registry discovers (imported late: the task folders import this module)."""
    from device_sim.tasks import task_names

    return task_names()


def __getattr__(name: str) -> Any:
    """``TASKS``: the discovered task names, for code written before the registry existed."""
    if name == "TASKS":
        return _task_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _integer_limits(dtype: str) -> tuple[int, int]:
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


@dataclass(frozen=True)
class QuantizedTensor:
    """Shape, dtype and affine int8 quantization of one model input or output.

    ``real = scale * (q - zero_point)``, as in TFLite.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Real values → the tensor's integer dtype, rounded and saturated like TFLite does."""
        low, high = _integer_limits(self.dtype)
        q = np.round(np.asarray(values, dtype=np.float64) / self.scale) + self.zero_point
        # minimum/maximum rather than np.clip: the same values, without np.clip's per-call
        # overhead (this runs for every window on the device)
        return np.maximum(np.minimum(q, high), low).astype(self.dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Integer tensor values → real values (float32)."""
        return ((np.asarray(values, dtype=np.float32) - self.zero_point) * self.scale).astype(
            np.float32
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": float(self.scale),
            "zero_point": int(self.zero_point),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantizedTensor:
        return cls(
            shape=tuple(int(n) for n in data["shape"]),
            dtype=str(data["dtype"]),
            scale=float(data["scale"]),
            zero_point=int(data["zero_point"]),
        )


@dataclass
class Bundle:
    """A loaded (and verified) model bundle.

    ``head`` holds the task's output semantics — ``labels`` for KWS, ``anomaly_threshold`` and band
    names for vibration, ``targets`` with units and band thresholds for air quality — as stored
    JSON; read it typed with ``spec_for(bundle.task).head(bundle)`` (``device_sim/tasks/<task>/
    head.py``), which refuses a missing or unknown field with the fix. ``extra`` holds
    task data a device or report needs that is not output semantics (normalization statistics,
    baselines, explanations).
    """

    directory: Path
    task: str
    name: str
    version: str
    input: QuantizedTensor
    output: QuantizedTensor
    feature_config: dict[str, Any]
    head: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    sparsity: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    model_sha256: str = ""
    schema_version: int = SCHEMA_VERSION
    # Monotonic release number (default: creation time in ms since the epoch). Devices refuse a
    # rollout with a lower release than the one they run unless the operator signs a downgrade.
    # 0 for bundles written before releases existed.
    release: int = 0

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE

    def model_bytes(self) -> bytes:
        return self.model_path.read_bytes()

    def identity(self) -> dict[str, str]:
        """What a device reports about the model it runs: name, version and sha256."""
        return {"name": self.name, "version": self.version, "sha256": self.model_sha256}

    def to_manifest(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "task": self.task,
            "name": self.name,
            "version": self.version,
            "release": self.release,
            "model_file": MODEL_FILE,
            "model_sha256": self.model_sha256,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "feature_config": self.feature_config,
            "head": self.head,
            "metrics": self.metrics,
            "sizes": self.sizes,
            "sparsity": self.sparsity,
            "provenance": self.provenance,
            "extra": self.extra,
        }


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_tflite_bytes(data: bytes, origin: str) -> None:
    """Refuse data that is not a TFLite flatbuffer before any interpreter sees it."""
    if len(data) < 16 or data[4:8] != TFLITE_MAGIC:
        raise BundleError(
            f"{origin} is not a TFLite flatbuffer (missing the 'TFL3' identifier; {len(data)} bytes): "
            "the file is truncated or corrupt — rebuild the bundle with `tinyfleet build`."
        )


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars/arrays, tuples and paths; NaN/Inf become null."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def default_version(created: datetime, sha256: str) -> str:
    """A sortable, unique model version: UTC creation time plus the start of the model hash."""
    return f"{created:%Y%m%d.%H%M%S}-{sha256[:8]}"


def write_bundle(
    directory: str | Path,
    model_bytes: bytes,
    *,
    task: str,
    name: str,
    input: QuantizedTensor,
    output: QuantizedTensor,
    feature_config: Mapping[str, Any],
    head: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    sizes: Mapping[str, Any] | None = None,
    sparsity: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    version: str | None = None,
    release: int | None = None,
) -> Bundle:
    """Write ``model.tflite`` and ``bundle.json`` into ``directory`` and return the loaded bundle.

    ``release`` (default: now in ms since the epoch) orders bundles for anti-rollback.
    """
    if task not in _task_names():
        raise BundleError(f"unknown task {task!r}; expected one of {', '.join(_task_names())}")
    check_tflite_bytes(model_bytes, "the model to bundle")
    directory = Path(directory)
    now = datetime.now(timezone.utc)
    created = now.replace(microsecond=0)
    digest = sha256_bytes(model_bytes)
    prov = {
        "tinyfleet_version": __version__,
        "created_utc": created.isoformat().replace("+00:00", "Z"),
        **dict(provenance or {}),
    }
    all_sizes = {"tflite_bytes": len(model_bytes), **dict(sizes or {})}
    bundle = Bundle(
        directory=directory,
        task=task,
        name=name,
        version=version or default_version(created, digest),
        input=input,
        output=output,
        feature_config=jsonable(dict(feature_config)),
        head=jsonable(dict(head)),
        metrics=jsonable(dict(metrics or {})),
        sizes=jsonable(all_sizes),
        sparsity=jsonable(dict(sparsity or {})),
        provenance=jsonable(prov),
        extra=jsonable(dict(extra or {})),
        model_sha256=digest,
        release=int(now.timestamp() * 1000) if release is None else _check_release(release),
    )
    atomic_write(directory / MODEL_FILE, model_bytes)
    save_manifest(bundle)
    return bundle


def _check_release(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise BundleError(f"release {value!r} must be an integer from 0 to 2**63 - 1")
    return value


def save_manifest(bundle: Bundle) -> None:
    """(Re)write ``bundle.json``, e.g. after the firmware stage measured the arena size."""
    text = json.dumps(jsonable(bundle.to_manifest()), indent=2, sort_keys=False, allow_nan=False)
    atomic_write(bundle.manifest_path, (text + "\n").encode())


def update_bundle(bundle: Bundle, **changes: Any) -> Bundle:
    """Return ``bundle`` with top-level fields merged (dicts are merged one level deep) and saved."""
    updated = bundle
    for key, value in changes.items():
        current = getattr(updated, key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            value = {**current, **jsonable(dict(value))}
        updated = dataclasses.replace(updated, **{key: value})
    save_manifest(updated)
    return updated


_REQUIRED = (
    "schema_version",
    "task",
    "name",
    "version",
    "model_sha256",
    "input",
    "output",
    "feature_config",
    "head",
)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Parse ``bundle.json`` with clear errors, without verifying the model."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(
            f"bundle folder {directory} does not exist: pass the --out folder of "
            "`tinyfleet build` (it holds model.tflite and bundle.json)"
        )
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} is missing: {directory} is not a tinyfleet bundle")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON ({exc}); rebuild the bundle") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} must hold a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{manifest_path} has schema version {version!r}, but tinyfleet {__version__} reads "
            f"schema version {SCHEMA_VERSION} only: rebuild the bundle with this tinyfleet, or "
            "install the tinyfleet version that wrote it"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise BundleError(f"{manifest_path} lacks required field(s) {', '.join(missing)}")
    if manifest["task"] not in _task_names():
        raise BundleError(f"{manifest_path}: unknown task {manifest['task']!r}")
    return manifest


def load_bundle(directory: str | Path, *, verify: bool = True) -> Bundle:
    """Load a bundle; with ``verify`` (the default) check the model file against its sha256."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise BundleError(f"{model_path} is missing: the bundle is incomplete; rebuild it")
    if verify:
        data = model_path.read_bytes()
        digest = sha256_bytes(data)
        if digest != manifest["model_sha256"]:
            raise BundleError(
                f"{model_path} does not match its bundle: sha256 is {digest[:16]}…, bundle.json says "
                f"{str(manifest['model_sha256'])[:16]}…. The model was changed or corrupted after "
                "the bundle was written; restore it or rebuild the bundle."
            )
        check_tflite_bytes(data, str(model_path))
    try:
        return Bundle(
            directory=directory,
            task=manifest["task"],
            name=str(manifest["name"]),
            version=str(manifest["version"]),
            input=QuantizedTensor.from_dict(manifest["input"]),
            output=QuantizedTensor.from_dict(manifest["output"]),
            feature_config=dict(manifest["feature_config"]),
            head=dict(manifest["head"]),
            metrics=dict(manifest.get("metrics") or {}),
            sizes=dict(manifest.get("sizes") or {}),
            sparsity=dict(manifest.get("sparsity") or {}),
            provenance=dict(manifest.get("provenance") or {}),
            extra=dict(manifest.get("extra") or {}),
            model_sha256=str(manifest["model_sha256"]),
            schema_version=int(manifest["schema_version"]),
            release=_check_release(manifest.get("release", 0)),
        )
    except (KeyError, TypeError, ValueError, BundleError) as exc:
        raise BundleError(f"{directory / MANIFEST_FILE} is malformed: {exc!r}") from exc
