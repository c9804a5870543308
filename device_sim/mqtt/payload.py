"""The JSON payloads a device publishes, and a strict parser for subscribers.

A prediction is one flat JSON object (flat so that Home Assistant templates read
``value_json.label``): the envelope keys in :data:`ENVELOPE_KEYS` plus the task's own fields
(``label``/``scores`` for KWS, ``anomaly_score``/``alarm`` for vibration, estimates for air quality).
The schema is versioned (:data:`SCHEMA_VERSION`, also sent as MQTT v5 user property ``schema``) and
documented in ``docs/mqtt.md``. Times are epoch milliseconds (``*_ms``) and UTC ISO-8601 (``ts``).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from device_sim.errors import TinyfleetError

try:  # orjson (the device extra) encodes a prediction ~10x faster than json; optional
    import orjson
except ImportError:  # pragma: no cover - exercised by the fallback test
    orjson = None

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
# A prediction is a few hundred bytes; anything near this is a bug or an attack, not data.
MAX_PAYLOAD_BYTES = 64 * 1024
ENVELOPE_KEYS = (
    "schema",
    "device",
    "task",
    "model",
    "ts",
    "ts_ms",
    "seq",
    "window",
    "valid",
    "reason",
    "timing_ms",
)
EVENT_ENVELOPE_KEYS = ("schema", "device", "task", "model", "ts", "ts_ms", "seq", "event")


class PayloadError(TinyfleetError):
    """A received message is not a valid tinyfleet payload (malformed, oversize, wrong schema)."""


@dataclass(frozen=True)
class Prediction:
    """One window's prediction as received: envelope plus the task's ``fields``.

    ``seq`` counts windows per (device, task) from 0 without gaps, across device restarts;
    ``window_start_ms``/``window_end_ms`` bound the samples (epoch ms; ``end`` = when the window
    was complete on the device); ``timing_ms`` holds ``features``, ``invoke`` and ``total`` in ms.
    """

    schema: int
    device: str
    task: str
    model: dict[str, str]
    ts: str
    ts_ms: int
    seq: int
    window_start_ms: int
    window_end_ms: int
    valid: bool
    fields: dict[str, Any]
    timing_ms: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies a prediction across duplicates: (device, task, seq)."""
        return (self.device, self.task, self.seq)


def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds → ``2026-01-31T12:00:00.123Z`` (called once per message: kept cheap)."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=8)
def _iso_second(epoch_s: int) -> str:
    """``2026-01-31T12:00:00`` for one epoch second (a fleet makes many messages per second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


def _finite(value: Any) -> Any:
    """JSON has no NaN/Inf: replace them by null (a NaN score must not break the message)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return _finite(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return _finite(value.tolist())
    return value


# One encoder for every message (``json.dumps`` with options builds a new one per call). Without
# orjson the standard library writes the same bytes (UTF-8, no escapes), except that it spells
# tiny floats in exponent form (``1e-05`` where orjson writes ``0.00001``): both are the same JSON.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _encode_text(message: Mapping[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(message)  # NaN/Inf become null, as _finite does
        except TypeError:  # numpy scalars/arrays, non-string keys, huge ints
            return orjson.dumps(_finite(message))
    try:
        return _ENCODER.encode(message).encode()
    except (ValueError, TypeError):
        return _ENCODER.encode(_finite(message)).encode()


def _dumps(message: Mapping[str, Any]) -> bytes:
    data = _encode_text(message)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"a {message.get('task')} payload would be {len(data)} bytes (limit "
            f"{MAX_PAYLOAD_BYTES}): the task runtime put too much into its fields"
        )
    return data


def encode_prediction(
    *,
    device: str,
    task: str,
    model: Mapping[str, str],
    seq: int,
    window_start_ms: int,
    window_end_ms: int,
    fields: Mapping[str, Any],
    valid: bool = True,
    reason: str | None = None,
    timing_ms: Mapping[str, float] | None = None,
    ts_ms: int | None = None,
) -> bytes:
    """Build the prediction JSON (UTF-8 bytes). Task fields may not reuse envelope key names."""
    clash = set(fields).intersection(ENVELOPE_KEYS)
    if clash:
        raise PayloadError(f"task fields {sorted(clash)} clash with the payload envelope")
    if ts_ms is None:
        ts_ms = int(time.time() * 1000)
    message: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "device": device,
        "task": task,
        "model": dict(model),
        "ts": iso_utc(ts_ms),
        "ts_ms": ts_ms,
        "seq": seq,
        "window": {"start_ms": window_start_ms, "end_ms": window_end_ms},
        "valid": valid,
    }
    if reason is not None:
        message["reason"] = reason
    message["timing_ms"] = {k: round(float(v), 3) for k, v in (timing_ms or {}).items()}
    message.update(fields)
    return _dumps(message)


def encode_event(
    *,
    device: str,
    task: str,
    model: Mapping[str, str],
    seq: int,
    event: Mapping[str, Any],
    ts_ms: int | None = None,
) -> bytes:
    """An event message; ``seq`` is the seq of the window that raised it, ``event`` its fields."""
    if ts_ms is None:
        ts_ms = int(time.time() * 1000)
    message = {
        "schema": SCHEMA_VERSION,
        "device": device,
        "task": task,
        "model": dict(model),
        "ts": iso_utc(ts_ms),
        "ts_ms": ts_ms,
        "seq": seq,
        "event": dict(event),
    }
    return _dumps(message)


def _load(data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload of {len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        message = orjson.loads(data) if orjson is not None else json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:  # both libraries' decode errors are ValueError
        raise PayloadError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(message).__name__}")
    schema = message.get("schema")
    if schema != SCHEMA_VERSION:
        raise PayloadError(
            f"payload has schema {schema!r}; this tinyfleet reads schema {SCHEMA_VERSION}: "
            "upgrade the subscriber or the devices so both speak the same version"
        )
    return message


def _require(message: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in message:
        raise PayloadError(f"payload lacks the required field {key!r}")
    value = message[key]
    # bool is an int in Python; a seq of true is still wrong
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise PayloadError(f"payload field {key!r} has the wrong type ({type(value).__name__})")
    return value


def parse_prediction(data: bytes | str) -> Prediction:
    """Validate and parse a prediction message; raise :class:`PayloadError` saying what is wrong."""
    message = _load(data)
    model = _require(message, "model", dict)
    for key in ("name", "version", "sha256"):
        if not isinstance(model.get(key), str):
            raise PayloadError(f"payload field model.{key} is missing or not a string")
    window = _require(message, "window", dict)
    for key in ("start_ms", "end_ms"):
        if not isinstance(window.get(key), int) or isinstance(window.get(key), bool):
            raise PayloadError(f"payload field window.{key} is missing or not an integer")
    seq = _require(message, "seq", int)
    if seq < 0:
        raise PayloadError(f"payload field 'seq' is negative ({seq})")
    timing = message.get("timing_ms", {})
    if not isinstance(timing, dict):
        raise PayloadError("payload field 'timing_ms' must be an object")
    reason = message.get("reason")
    return Prediction(
        schema=message["schema"],
        device=_require(message, "device", str),
        task=_require(message, "task", str),
        model={k: model[k] for k in ("name", "version", "sha256")},
        ts=_require(message, "ts", str),
        ts_ms=_require(message, "ts_ms", int),
        seq=seq,
        window_start_ms=window["start_ms"],
        window_end_ms=window["end_ms"],
        valid=_require(message, "valid", bool),
        fields={k: v for k, v in message.items() if k not in ENVELOPE_KEYS},
        timing_ms={k: float(v) for k, v in timing.items() if isinstance(v, (int, float))},
        reason=reason if isinstance(reason, str) else None,
    )


def parse_event(data: bytes | str) -> dict[str, Any]:
    """Validate an event message and return it as a dict (envelope + ``event`` object)."""
    message = _load(data)
    for key, kind in (("device", str), ("task", str), ("seq", int), ("event", dict)):
        _require(message, key, kind)
    return message
