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
  (:data:`device_sim.tasks.air_quality.ha.CO_PPM_PER_MG_M3`); NO2 in µg/m³ (``nitrogen_dioxide``), benzene in µg/m³
  (``volatile_organic_compounds``, the only class for a VOC mass concentration) — and a band sensor
  (device class ``enum`` with the bundle's band names).

Each task also gets a diagnostic ``<task> model version`` sensor fed by the retained
``tinyfleet/<device>/<task>/model`` identity, so a rollout shows up in Home Assistant.

Every entity has ``availability_topic`` = the device's retained ``status`` topic (``online`` /
``offline``, the Last Will), a ``unique_id`` and a ``device`` block, so Home Assistant groups the
entities under one device. Each task's entities are built by its spec
(``device_sim/tasks/<task>/ha.py``), with field names from its runtime; documented in
``docs/home_assistant.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from device_sim.bundle import Bundle
from device_sim.mqtt import topics
from device_sim.tasks import spec_for
from device_sim.version import __version__

DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = f"{DISCOVERY_PREFIX}/status"
HA_ONLINE = b"online"


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

        def common(object_id: str, name: str) -> dict[str, Any]:
            return _common(device_id, object_id, name, device)

        entities = spec_for(bundle.task).ha_entities(device_id, bundle, common)
        for component, object_id, config in entities + _model_version(device_id, bundle, device):
            payload = json.dumps(config, ensure_ascii=False, sort_keys=True).encode()
            messages.append(
                DiscoveryMessage(config_topic(component, device_id, object_id), payload)
            )
    return messages


def removal_messages(messages: Iterable[DiscoveryMessage]) -> list[DiscoveryMessage]:
    """Empty retained payloads that make Home Assistant delete the entities of ``messages``."""
    return [DiscoveryMessage(message.topic, b"") for message in messages]
