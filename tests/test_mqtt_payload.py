"""The prediction payload: round trip, strict parsing of malformed input, size limit."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_sim.mqtt.payload import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    PayloadError,
    encode_event,
    encode_prediction,
    parse_event,
    parse_prediction,
)

MODEL = {"name": "ae", "version": "v1", "sha256": "ab" * 32}


def _good(**overrides) -> bytes:
    kwargs = dict(
        device="dev-1",
        task="vibration",
        model=MODEL,
        seq=7,
        window_start_ms=1000,
        window_end_ms=1640,
        fields={"anomaly_score": 0.25, "alarm": False},
        timing_ms={"features": 0.4, "invoke": 0.1, "total": 0.6},
        ts_ms=1_700_000_000_123,
    )
    kwargs.update(overrides)
    return encode_prediction(**kwargs)


def test_prediction_round_trips_with_envelope_and_task_fields():
    prediction = parse_prediction(_good())
    assert prediction.schema == SCHEMA_VERSION
    assert prediction.key == ("dev-1", "vibration", 7)
    assert prediction.model == MODEL
    assert prediction.ts == "2023-11-14T22:13:20.123Z"
    assert (prediction.window_start_ms, prediction.window_end_ms) == (1000, 1640)
    assert prediction.fields == {"anomaly_score": 0.25, "alarm": False}
    assert prediction.timing_ms["invoke"] == pytest.approx(0.1)
    assert prediction.valid is True and prediction.reason is None


def test_invalid_window_carries_its_reason():
    prediction = parse_prediction(_good(valid=False, reason="clipped", fields={}))
    assert prediction.valid is False
    assert prediction.reason == "clipped"


def test_non_finite_scores_become_null_instead_of_breaking_json():
    data = _good(fields={"anomaly_score": float("nan"), "scores": [1.0, float("inf")]})
    message = json.loads(data)
    assert message["anomaly_score"] is None
    assert message["scores"] == [1.0, None]


def test_task_fields_may_not_overwrite_the_envelope():
    with pytest.raises(PayloadError, match="clash"):
        _good(fields={"seq": 3})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"schema": 99}).encode(), "schema 99"),
    ],
)
def test_malformed_payloads_raise_a_clear_error(data, message):
    with pytest.raises(PayloadError, match=message):
        parse_prediction(data)


@pytest.mark.parametrize("field", ["device", "task", "seq", "ts_ms", "valid", "model", "window"])
def test_each_missing_required_field_is_named(field):
    message = json.loads(_good())
    del message[field]
    with pytest.raises(PayloadError, match=field):
        parse_prediction(json.dumps(message).encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", "7"), ("seq", True), ("seq", -1), ("valid", "yes"), ("device", 3)],
)
def test_wrongly_typed_fields_are_refused(field, value):
    message = json.loads(_good())
    message[field] = value
    with pytest.raises(PayloadError, match="seq|valid|device"):
        parse_prediction(json.dumps(message).encode())


def test_oversize_payloads_are_refused_before_parsing():
    message = json.loads(_good())
    message["blob"] = "x" * MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError, match="exceeds"):
        parse_prediction(json.dumps(message).encode())
    with pytest.raises(PayloadError, match="bytes"):
        _good(fields={"blob": "x" * MAX_PAYLOAD_BYTES})


def test_event_round_trips():
    data = encode_event(device="d", task="kws", model=MODEL, seq=4, event={"keyword": "yes"})
    assert parse_event(data)["event"] == {"keyword": "yes"}
    with pytest.raises(PayloadError, match="event"):
        parse_event(json.dumps({"schema": SCHEMA_VERSION, "device": "d", "task": "kws", "seq": 1}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_raise_only_payload_error(data):
    with contextlib.suppress(PayloadError):
        parse_prediction(data)


def test_without_orjson_the_standard_library_writes_the_same_bytes(monkeypatch):
    from device_sim.mqtt import payload as module

    fields = {
        "estimates": {"NO2": {"value": 41.25, "unit": "µg/m³"}},
        "scores": {"yes": 0.8125, "no": float("nan")},
        "anomaly": False,
    }
    fast = _good(fields=fields)
    monkeypatch.setattr(module, "orjson", None)
    assert _good(fields=fields) == fast
    assert "µg/m³".encode() in fast  # UTF-8, not \\u escapes
    assert parse_prediction(fast).fields["scores"]["no"] is None
