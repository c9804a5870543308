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
from device_sim.mqtt import topics

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


INT64_MAX = 2**63 - 1  # SQLite (and PostgreSQL BIGINT) integers; a larger seq or time is refused
# Only a \uD800-\uDFFF escape can give a decoded string a lone surrogate: the message is walked
# only when its text holds a \u escape at all (devices send UTF-8, so that is rare).


class PayloadError(TinyfleetError):
    """A received message is not a valid tinyfleet payload (malformed, oversize, wrong schema)."""


class IdentityError(PayloadError):
    """The body's ``device``/``task`` disagree with the topic it arrived on.

    The topic is what the broker's ACL authenticated (a device may publish under
    ``tinyfleet/<its id>/`` only); the body is whatever the sender wrote, so it is not trusted.
    """


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


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"payload is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise PayloadError(f"payload number {text[:40]} does not fit a 64-bit float")
    return value


def _check_strings(value: Any) -> None:
    """Every string encodes as UTF-8 (a lone surrogate from a ``\\ud800`` escape does not)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise PayloadError(f"payload holds a string that is not valid Unicode: {exc}") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _load(data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload of {len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    try:
        # UTF-8 only (json.loads would also take UTF-16/32 bytes, which the store cannot keep as
        # text), and strict JSON: no NaN/Infinity, no 1e999 (devices never send them).
        message = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"payload is not valid JSON (strict, UTF-8): {exc}") from exc
    if b"\\u" in raw:
        _check_strings(message)
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
    if kind is int and not 0 <= value <= INT64_MAX:
        raise PayloadError(f"payload field {key!r} is out of range (0 to 2**63-1): {value}")
    return value


def _timing(value: Any) -> dict[str, float]:
    """``timing_ms`` as finite floats; anything else there is dropped (it is informative only)."""
    if not isinstance(value, dict):
        raise PayloadError("payload field 'timing_ms' must be an object")
    timing = {}
    for key, number in value.items():
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            try:
                number = float(number)
            except OverflowError:
                continue
            if math.isfinite(number):
                timing[key] = number
    return timing


def parse_prediction(data: bytes | str, topic: str | None = None) -> Prediction:
    """Validate and parse a prediction message; raise :class:`PayloadError` saying what is wrong.

    With ``topic`` (what the message arrived on), the body's ``device`` and ``task`` must equal
    the topic's levels, or :class:`IdentityError`: identity comes from the topic, which the
    broker's ACL authenticated. Integers must fit a signed 64-bit column and be >= 0; strings must
    be valid Unicode; the JSON must be strict UTF-8 (what the store can keep).
    """
    message = _load(data)
    model = _require(message, "model", dict)
    for key in ("name", "version", "sha256"):
        if not isinstance(model.get(key), str):
            raise PayloadError(f"payload field model.{key} is missing or not a string")
    window = _require(message, "window", dict)
    for key in ("start_ms", "end_ms"):
        _require(window, key, int)
    device = _require(message, "device", str)
    task = _require(message, "task", str)
    if topic is not None:
        valid_ids = topics.is_valid_id(device) and topics.is_valid_id(task)
        if not valid_ids or topic != topics.prediction_topic(device, task):
            raise IdentityError(
                f"payload claims device {device!r} task {task!r} but arrived on {topic!r}"
            )
    reason = message.get("reason")
    return Prediction(
        schema=message["schema"],
        device=device,
        task=task,
        model={k: model[k] for k in ("name", "version", "sha256")},
        ts=_require(message, "ts", str),
        ts_ms=_require(message, "ts_ms", int),
        seq=_require(message, "seq", int),
        window_start_ms=window["start_ms"],
        window_end_ms=window["end_ms"],
        valid=_require(message, "valid", bool),
        fields={k: v for k, v in message.items() if k not in ENVELOPE_KEYS},
        timing_ms=_timing(message.get("timing_ms", {})),
        reason=reason if isinstance(reason, str) else None,
    )


@dataclass(frozen=True)
class Received:
    """One prediction as it arrived: topic, parsed body, raw bytes, receipt time (epoch ms).

    What the store writes. Its identity is the topic's: :func:`receive_prediction` refuses a body
    that disagrees, and the store checks ``identity_ok`` again before writing a row.
    """

    topic: str
    prediction: Prediction
    payload: bytes
    received_ms: int

    @property
    def identity_ok(self) -> bool:
        p = self.prediction
        return self.topic == topics.prediction_topic(p.device, p.task)


def receive_prediction(topic: str, payload: bytes, received_ms: int) -> Received:
    """Parse ``payload`` received on ``topic``; PayloadError / IdentityError if it must be dropped."""
    return Received(topic, parse_prediction(payload, topic), bytes(payload), received_ms)


def parse_event(data: bytes | str) -> dict[str, Any]:
    """Validate an event message and return it as a dict (envelope + ``event`` object)."""
    message = _load(data)
    for key, kind in (("device", str), ("task", str), ("seq", int), ("event", dict)):
        _require(message, key, kind)
    return message
