"""Home Assistant MQTT discovery: each device's models appear in Home Assistant as entities.

Why: an IoT engineer running Home Assistant should see a tinyfleet device — with its keyword events,
vibration alarm and air-quality readings — without writing YAML. A device with ``ha_discovery`` on
publishes the retained config messages from :func:`discovery_messages` when it connects, and again
when Home Assistant announces ``online`` on ``homeassistant/status`` (its birth message, sent after
each Home Assistant restart).

Entities per task (state comes from the topics the device already publishes; no extra traffic):

* ``kws``: an ``event`` entity; ``event_types`` are the bundle's keyword labels; fires on every
  ``tinyfleet/<device>/kws/event`` (a detected keyword).
* ``vibration``: a ``binary_sensor`` (device class ``problem``) that is ON while the debounced alarm
  is raised, and an ``anomaly score`` ``sensor`` (reconstruction error, standardised feature units²).
* ``air_quality``: one ``sensor`` per target — CO in ppm (device class ``carbon_monoxide``: ppm is
  the one unit every Home Assistant release accepts for it; 2025.7–2025.10 reject mg/m³ outright),
  converted by the value template from the model's mg/m³ at 25 °C and 1013.25 hPa
  (:data:`CO_PPM_PER_MG_M3`); NO2 in µg/m³ (``nitrogen_dioxide``), benzene in µg/m³
  (``volatile_organic_compounds``, the only class for a VOC mass concentration) — and a band sensor
  (device class ``enum`` with the bundle's band names).

Each task also gets a diagnostic ``<task> model version`` sensor fed by the retained
``tinyfleet/<device>/<task>/model`` identity, so a rollout shows up in Home Assistant.

Every entity has ``availability_topic`` = the device's retained ``status`` topic (``online`` /
``offline``, the Last Will), a ``unique_id`` and a ``device`` block, so Home Assistant groups the
entities under one device. Field names follow ``device_sim/tasks/*.py``; documented in
``docs/home_assistant.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from device_sim.bundle import Bundle
from device_sim.mqtt import topics
from device_sim.tasks.air_quality import DEFAULT_BANDS
from device_sim.tasks.kws import NON_KEYWORDS
from tinyfleet import __version__

DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = f"{DISCOVERY_PREFIX}/status"
HA_ONLINE = b"online"

# Home Assistant device classes for the air-quality targets, keyed by target key, with the one unit
# each class accepts for them. A target whose unit differs is published without a device class
# (the unit stays truthful; Home Assistant then just shows a number with a unit).
AIR_QUALITY_CLASSES: dict[str, tuple[str, str, str]] = {
    # key: (device_class, unit, friendly name)
    "CO": ("carbon_monoxide", "ppm", "Carbon monoxide"),
    "NO2": ("nitrogen_dioxide", "µg/m³", "Nitrogen dioxide"),
    "C6H6": ("volatile_organic_compounds", "µg/m³", "Benzene"),
}


# ppm = mg/m³ × molar volume / molar mass: 24.45 L/mol is the molar volume of an ideal gas at
# 25 °C and 1013.25 hPa (the reference conditions of EU/WHO air-quality limits), 28.01 g/mol is CO's
# molar mass. The device cannot measure the air's pressure, so the conversion states its conditions
# instead (at 0 °C the factor would be 0.80 instead of 0.873).
CO_PPM_PER_MG_M3 = 24.45 / 28.01

# (target key, unit the model estimates) → (unit published to Home Assistant, factor)
UNIT_CONVERSIONS: dict[tuple[str, str], tuple[str, float]] = {
    ("CO", "mg/m³"): ("ppm", CO_PPM_PER_MG_M3),
}


class DiscoveryMessage(NamedTuple):
    """One config message: publish ``payload`` on ``topic`` with ``retain`` at ``qos``."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.payload)


def is_ha_online(payload: bytes | str) -> bool:
    """True for Home Assistant's birth message on ``homeassistant/status`` (re-send discovery)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return payload.strip() == HA_ONLINE


def config_topic(component: str, device_id: str, object_id: str) -> str:
    """``homeassistant/<component>/<node_id>/<object_id>/config`` with node_id = the device id."""
    return f"{DISCOVERY_PREFIX}/{component}/{device_id}/{object_id}/config"


def _device_block(device_id: str, bundles: list[Bundle], name: str | None) -> dict[str, Any]:
    models = ", ".join(f"{b.task}: {b.name} {b.version}" for b in bundles)
    return {
        "identifiers": [f"tinyfleet_{device_id}"],
        "name": name or f"tinyfleet {device_id}",
        "manufacturer": "tinyfleet",
        "model": models or "tinyfleet device",
        "sw_version": __version__,
    }


def _common(device_id: str, object_id: str, name: str, device: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"tinyfleet_{device_id}_{object_id}",
        "availability_topic": topics.status_topic(device_id),
        "payload_available": topics.STATUS_ONLINE.decode(),
        "payload_not_available": topics.STATUS_OFFLINE.decode(),
        "device": device,
        "origin": {"name": "tinyfleet", "sw_version": __version__},
    }


def _kws(device_id: str, bundle: Bundle, device: dict[str, Any]) -> list[tuple[str, str, dict]]:
    # Only keywords are ever detected (device_sim/tasks/kws.py): _silence_/_unknown_ would be event
    # types that can never fire, so they are left out; a bundle may name its keywords explicitly.
    labels = [str(label) for label in bundle.head.get("keywords") or bundle.head.get("labels", [])]
    labels = [label for label in labels if label not in NON_KEYWORDS]
    config = {
        **_common(device_id, "kws_keyword", "Keyword", device),
        "state_topic": topics.event_topic(device_id, "kws"),
        "event_types": labels,
        # Event messages nest the task's event under "event" (device_sim/mqtt/payload.py). HA wants
        # a JSON object with "event_type"; the other keys become attributes of the fired event.
        "value_template": "{{ {'event_type': value_json.event.label, "
        "'score': value_json.event.score | default(None)} | to_json }}",
        "icon": "mdi:microphone-message",
    }
    return [("event", "kws_keyword", config)]


def _vibration(
    device_id: str, bundle: Bundle, device: dict[str, Any]
) -> list[tuple[str, str, dict]]:
    state = topics.prediction_topic(device_id, "vibration")
    alarm = {
        **_common(device_id, "vibration_alarm", "Vibration alarm", device),
        "state_topic": state,
        "device_class": "problem",
        # "alarm" is the debounced state (k of n anomalous windows), present in every prediction.
        "value_template": "{{ 'ON' if value_json.alarm else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    score = {
        **_common(device_id, "vibration_anomaly_score", "Vibration anomaly score", device),
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


def _air_quality(
    device_id: str, bundle: Bundle, device: dict[str, Any]
) -> list[tuple[str, str, dict]]:
    state = topics.prediction_topic(device_id, "air_quality")
    entities = []
    for target in bundle.head.get("targets", []):
        key, model_unit = str(target["key"]), str(target["unit"])
        object_id = "air_quality_" + re.sub(r"[^a-z0-9_]", "_", key.lower())  # HA: [a-z0-9_-]
        device_class, class_unit, friendly = AIR_QUALITY_CLASSES.get(key, (None, None, key))
        unit, factor = UNIT_CONVERSIONS.get((key, model_unit), (model_unit, 1.0))
        value = f"value_json.estimates['{key}'].value"
        if factor != 1.0:
            value = f"({value} * {factor:.6f}) | round(3)"
        config = {
            **_common(device_id, object_id, f"{friendly} ({key})", device),
            "state_topic": state,
            "unit_of_measurement": unit,
            "state_class": "measurement",
            # a window that was not inferred has no estimates: None makes the state "unknown"
            "value_template": f"{{{{ {value} if value_json.estimates is defined and "
            f"value_json.estimates['{key}'].value is not none else None }}}}",
            "suggested_display_precision": 2 if unit in ("mg/m³", "ppm") else 1,
        }
        if device_class and unit == class_unit:
            config["device_class"] = device_class
        entities.append(("sensor", object_id, config))
    bands = (bundle.head.get("bands") or DEFAULT_BANDS).get("names")  # as the task runtime does
    band = {
        **_common(device_id, "air_quality_band", "Air quality band", device),
        "state_topic": state,
        "value_template": "{{ value_json.band if value_json.band is defined and value_json.band "
        "else None }}",
        "icon": "mdi:air-filter",
    }
    if bands:
        band["device_class"] = "enum"
        band["options"] = [str(name) for name in bands]
    entities.append(("sensor", "air_quality_band", band))
    return entities


def _model_version(
    device_id: str, bundle: Bundle, device: dict[str, Any]
) -> list[tuple[str, str, dict]]:
    """Which model the task runs, from the device's retained identity (changes after a rollout)."""
    object_id = f"{bundle.task}_model"
    config = {
        **_common(device_id, object_id, f"{bundle.task} model version", device),
        "state_topic": topics.model_topic(device_id, bundle.task),
        "value_template": "{{ value_json.model.version }}",
        "json_attributes_topic": topics.model_topic(device_id, bundle.task),
        "json_attributes_template": "{{ value_json.model | to_json }}",
        "entity_category": "diagnostic",
        "icon": "mdi:chip",
    }
    return [("sensor", object_id, config)]


_BUILDERS = {"kws": _kws, "vibration": _vibration, "air_quality": _air_quality}


def discovery_messages(
    device_id: str,
    bundles: Mapping[str, Bundle] | Iterable[Bundle],
    *,
    device_name: str | None = None,
) -> list[DiscoveryMessage]:
    """The retained discovery config messages for one device running ``bundles`` (one per task).

    Publish each retained at QoS 1; publishing an empty retained payload on the same topics removes
    the entities (:func:`removal_messages`).
    """
    topics.check_id(device_id)
    bundle_list = list(bundles.values()) if isinstance(bundles, Mapping) else list(bundles)
    device = _device_block(device_id, bundle_list, device_name)
    messages = []
    for bundle in bundle_list:
        entities = _BUILDERS[bundle.task](device_id, bundle, device)
        for component, object_id, config in entities + _model_version(device_id, bundle, device):
            payload = json.dumps(config, ensure_ascii=False, sort_keys=True).encode()
            messages.append(
                DiscoveryMessage(config_topic(component, device_id, object_id), payload)
            )
    return messages


def removal_messages(messages: Iterable[DiscoveryMessage]) -> list[DiscoveryMessage]:
    """Empty retained payloads that make Home Assistant delete the entities of ``messages``."""
    return [DiscoveryMessage(message.topic, b"") for message in messages]
