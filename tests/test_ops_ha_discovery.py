"""Home Assistant discovery: documented required fields, templates rendered against real device
payloads, and a round trip through mosquitto with the real device runtime.

Required fields per component, from Home Assistant's MQTT integration docs:

* https://www.home-assistant.io/integrations/event.mqtt/ — ``state_topic`` and ``event_types``
  required; the value template must render a JSON object with ``event_type``.
* https://www.home-assistant.io/integrations/sensor.mqtt/ — ``state_topic`` required.
* https://www.home-assistant.io/integrations/binary_sensor.mqtt/ — ``state_topic`` required; the
  rendered value must match ``payload_on``/``payload_off`` (default ON/OFF).
* https://www.home-assistant.io/integrations/mqtt/#discovery-messages — topic
  ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``; the ``device`` block needs
  ``identifiers`` or ``connections`` and only works together with ``unique_id``.
* https://www.home-assistant.io/integrations/sensor/#device-class — units per device class
  (``carbon_monoxide``: ppm is the unit every release accepts — 2025.7–2025.10 reject mg/m³;
  ``nitrogen_dioxide`` and ``volatile_organic_compounds``: µg/m³); ``enum`` sensors need ``options``
  and no unit. ``make check-ha`` validates the same configs with Home Assistant's own schema code.
"""

from __future__ import annotations

import json
import re
import threading
import time

import jinja2
import numpy as np
import pytest
from ops_fixtures import (
    Collector,
    air_quality_bundle,
    aq_targets,
    close,
    connect,
    head_only_bundle,
    subscribe,
    tiny_model,
)

from device_sim.fleet import Fleet, FleetOptions
from device_sim.mqtt import topics
from device_sim.mqtt.ha_discovery import discovery_messages, removal_messages
from device_sim.mqtt.payload import encode_event, encode_prediction
from device_sim.tasks import runtime_for
from device_sim.tasks.air_quality import decode_outputs
from ops.broker import MosquittoBroker

REQUIRED = {
    "event": {"state_topic", "event_types"},
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
}
COMMON = {"name", "unique_id", "device", "availability_topic", "value_template"}
UNITS = {
    "carbon_monoxide": {"ppm"},
    "nitrogen_dioxide": {"µg/m³"},
    "volatile_organic_compounds": {"µg/m³", "mg/m³"},
}
TOPIC = re.compile(
    r"^homeassistant/(event|sensor|binary_sensor)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$"
)
KWS_LABELS = ["_silence_", "_unknown_", "yes", "no"]
VIBRATION_HEAD = {
    "anomaly_threshold": 0.5,
    "feature_names": ["band_0", "band_1", "band_2", "band_3"],
    "feature_ranges_hz": [[0, 100], [100, 200], [200, 400], [400, 800]],
    "alarm_k": 2,
    "alarm_n": 3,
}
AQ_HEAD = {
    "targets": aq_targets(),
}
AQ_FEATURES = {"inputs": ["T", "RH"], "window_rows": 3}


@pytest.fixture
def bundles(tmp_path):
    return {
        "kws": head_only_bundle(
            "kws", {"labels": KWS_LABELS}, tmp_path, feature_config={"sample_rate": 16000}
        ),
        "vibration": head_only_bundle(
            "vibration",
            VIBRATION_HEAD,
            tmp_path,
            feature_config={"hop_samples": 256, "sample_rate": 6400, "window_samples": 2048},
        ),
        "air_quality": head_only_bundle(
            "air_quality", AQ_HEAD, tmp_path, feature_config=AQ_FEATURES, n_outputs=3
        ),
    }


def render(template: str, payload: bytes) -> str:
    """Render a value template the way Home Assistant's MQTT integration does (value_json)."""
    env = jinja2.Environment()
    env.filters["to_json"] = json.dumps
    return env.from_string(template).render(value_json=json.loads(payload), value=payload.decode())


def _by_object(messages):
    return {m.topic.split("/")[3]: (m.topic.split("/")[1], m.config) for m in messages}


def test_every_entity_has_the_fields_home_assistant_requires(bundles):
    messages = discovery_messages("node-7", bundles)
    entities = _by_object(messages)
    assert set(entities) == {
        "kws_keyword",
        "vibration_alarm",
        "vibration_anomaly_score",
        "air_quality_co",
        "air_quality_no2",
        "air_quality_c6h6",
        "air_quality_band",
        "kws_model",
        "vibration_model",
        "air_quality_model",
    }
    unique_ids = set()
    for message in messages:
        assert TOPIC.match(message.topic), message.topic
        assert message.retain is True
        component, config = message.topic.split("/")[1], message.config
        missing = (REQUIRED[component] | COMMON) - set(config)
        assert not missing, f"{message.topic} lacks {missing}"
        assert config["device"]["identifiers"] == ["tinyfleet_node-7"]
        assert config["availability_topic"] == "tinyfleet/node-7/status"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        unique_ids.add(config["unique_id"])
        device_class = config.get("device_class")
        if device_class in UNITS:
            assert config["unit_of_measurement"] in UNITS[device_class], config
        if device_class == "enum":
            assert config["options"] and "unit_of_measurement" not in config
    assert len(unique_ids) == len(messages)
    removals = removal_messages(messages)  # what deletes the entities again
    assert [(m.topic, m.payload, m.retain) for m in removals] == [
        (m.topic, b"", True) for m in messages
    ]
    component, kws = entities["kws_keyword"]
    assert component == "event" and kws["event_types"] == ["yes", "no"]
    assert entities["vibration_alarm"][0] == "binary_sensor"
    assert entities["vibration_alarm"][1]["device_class"] == "problem"
    co = entities["air_quality_co"][1]
    assert (co["device_class"], co["unit_of_measurement"]) == ("carbon_monoxide", "ppm")
    assert entities["air_quality_no2"][1]["device_class"] == "nitrogen_dioxide"
    assert entities["air_quality_c6h6"][1]["unit_of_measurement"] == "µg/m³"


def _prediction(task: str, fields: dict, seq: int = 0) -> bytes:
    """The message the device publishes for ``fields`` (as ``Device.run_window`` builds it)."""
    fields = dict(fields)
    valid = bool(fields.pop("valid", True))
    reason = fields.pop("reason", None)
    return encode_prediction(
        device="node-7",
        task=task,
        model={"name": "m", "version": "v", "sha256": "00"},
        seq=seq,
        window_start_ms=0,
        window_end_ms=1000,
        fields=fields,
        valid=valid,
        reason=reason,
    )


def test_templates_render_what_the_task_runtimes_publish(bundles):
    entities = {
        k: config for k, (_, config) in _by_object(discovery_messages("node-7", bundles)).items()
    }

    kws = runtime_for(bundles["kws"])
    confident_yes = np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float32)
    events = [kws.process(confident_yes, np.zeros(4)).event for _ in range(8)]
    event = next(e for e in events if e is not None)
    payload = encode_event(device="node-7", task="kws", model={}, seq=3, event=event)
    fired = json.loads(render(entities["kws_keyword"]["value_template"], payload))
    assert fired["event_type"] == "yes"
    assert fired["event_type"] in entities["kws_keyword"]["event_types"]

    vibration = runtime_for(bundles["vibration"])
    quiet, loud = np.zeros(4, np.float32), np.full(4, 3.0, np.float32)
    alarm = entities["vibration_alarm"]["value_template"]
    score = entities["vibration_anomaly_score"]["value_template"]
    calm = _prediction("vibration", vibration.process(quiet, quiet).fields)
    assert render(alarm, calm) == "OFF" and float(render(score, calm)) == 0.0
    for _ in range(3):
        result = vibration.process(loud, quiet)
    raised = _prediction("vibration", result.fields)
    assert render(alarm, raised) == "ON" and float(render(score, raised)) == pytest.approx(9.0)
    skipped = _prediction("vibration", vibration.invalid_result("clipped").fields)
    assert render(alarm, skipped) == "ON"  # the alarm holds through a window that was skipped
    assert render(score, skipped) == "None"  # Home Assistant shows "unknown"

    air = runtime_for(bundles["air_quality"])
    output = np.array([1.0, 2.0, 0.5])
    estimates = _prediction("air_quality", air.process(output, np.zeros(6)).fields)
    co = render(entities["air_quality_co"]["value_template"], estimates)
    no2 = render(entities["air_quality_no2"]["value_template"], estimates)
    expected = decode_outputs(output, bundles["air_quality"].head)
    # CO: the model's mg/m³ published as ppm at 25 °C, 1013.25 hPa (24.45 L/mol, 28.01 g/mol)
    assert float(co) == pytest.approx(expected[0] * 24.45 / 28.01, abs=1e-3)
    assert float(no2) == pytest.approx(expected[1], abs=1e-3)
    band = render(entities["air_quality_band"]["value_template"], estimates)
    assert band in entities["air_quality_band"]["options"]
    missing = _prediction("air_quality", air.invalid_result("missing T in 1 of 3 hours").fields)
    assert render(entities["air_quality_co"]["value_template"], missing) == "None"


class RowSource:
    sample_rate = 1.0

    def read(self, n: int) -> np.ndarray:
        return np.column_stack([np.full(n, 20.0), np.full(n, 50.0)])

    def close(self) -> None:
        pass


def test_discovery_round_trip_through_mosquitto_and_resent_when_home_assistant_restarts(tmp_path):
    broker = MosquittoBroker(tmp_path / "broker").start()
    bundle = air_quality_bundle(tmp_path / "aq", tiny_model(), version="v1")
    runner = Fleet(
        FleetOptions(
            broker_url=broker.url,
            bundles=[bundle],
            device_ids=["node-7"],
            rate_hz=10,
            duration_s=60,
            state_dir=tmp_path / "state",
            ha_discovery=True,
            drain_timeout_s=2,
        ),
        source_factory=lambda b, i, s: RowSource(),
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    expected = {m.topic: m.config for m in discovery_messages("node-7", [bundle])}
    seen = Collector()
    home_assistant, rc = connect(broker.port, collector=seen)
    try:
        assert rc == 0
        deadline = time.monotonic() + 10
        while not runner.devices[0].publisher.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the configs are published on connect
        subscribe(home_assistant, "homeassistant/+/node-7/#")
        subscribe(home_assistant, "tinyfleet/node-7/#")

        def configs(messages):
            return [(t, p, r) for t, p, r in messages if t.startswith("homeassistant/")]

        # retained: a Home Assistant that subscribes later still gets every config
        assert seen.wait_for(lambda m: len(configs(m)) >= len(expected))
        first = configs(seen.messages)
        assert all(retained for _, _, retained in first)
        assert {t: json.loads(p) for t, p, _ in first} == expected
        assert seen.wait_for(lambda m: ("tinyfleet/node-7/status", b"online", True) in m)

        # the state topic the sensors read carries values the templates understand
        state = expected[next(t for t in expected if t.endswith("air_quality_co/config"))]
        assert seen.wait_for(lambda m: any(t == state["state_topic"] for t, _, _ in m))
        payload = next(p for t, p, _ in seen.messages if t == state["state_topic"])
        assert float(render(state["value_template"], payload)) >= 0.0

        # the model-version sensor reads the device's retained identity
        model_config = expected[next(t for t in expected if t.endswith("air_quality_model/config"))]
        assert seen.wait_for(lambda m: any(t == model_config["state_topic"] for t, _, _ in m))
        identity = next(p for t, p, _ in seen.messages if t == model_config["state_topic"])
        assert render(model_config["value_template"], identity) == "v1"

        # Home Assistant restarts: its birth message makes the device publish the configs again
        home_assistant.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        assert seen.wait_for(lambda m: len(configs(m)) >= 2 * len(expected))
    finally:
        close(home_assistant)
        runner.stop()
        thread.join(15)
        runner.close()
        broker.close()
    assert topics.status_topic("node-7") == "tinyfleet/node-7/status"
