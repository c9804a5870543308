"""Home Assistant entities for vibration: the debounced alarm and the anomaly score."""

from __future__ import annotations

from device_sim.bundle import Bundle
from device_sim.mqtt import topics
from device_sim.tasks.spec import CommonKeys, HaEntity


def ha_entities(device_id: str, bundle: Bundle, common: CommonKeys) -> list[HaEntity]:
    state = topics.prediction_topic(device_id, bundle.task)
    alarm = {
        **common("vibration_alarm", "Vibration alarm"),
        "state_topic": state,
        "device_class": "problem",
        # "alarm" is the debounced state (k of n anomalous windows), present in every prediction.
        "value_template": "{{ 'ON' if value_json.alarm else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    score = {
        **common("vibration_anomaly_score", "Vibration anomaly score"),
        "state_topic": state,
        "state_class": "measurement",
        # Windows that were not inferred (valid: false) carry no score: the state becomes unknown.
        "value_template": "{{ value_json.anomaly_score if value_json.anomaly_score is defined "
        "else None }}",
        "json_attributes_topic": state,
        "json_attributes_template": "{{ {'threshold': value_json.threshold} | to_json }}",
        "icon": "mdi:sine-wave",
        "entity_category": "diagnostic",
    }
    return [
        ("binary_sensor", "vibration_alarm", alarm),
        ("sensor", "vibration_anomaly_score", score),
    ]
