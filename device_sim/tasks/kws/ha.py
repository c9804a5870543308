"""Home Assistant entity for keyword spotting: an ``event`` entity firing on each detection."""

from __future__ import annotations

from typing import Any

from device_sim.bundle import Bundle
from device_sim.mqtt import topics
from device_sim.tasks.kws.head import KwsHead
from device_sim.tasks.spec import CommonKeys, HaEntity


def ha_entities(device_id: str, bundle: Bundle, common: CommonKeys) -> list[HaEntity]:
    # Only keywords are ever detected (device_sim/tasks/kws/runtime.py): _silence_/_unknown_ would
    # be event types that can never fire, so they are left out; a bundle may name its keywords.
    head = KwsHead.from_dict(bundle.head)
    config: dict[str, Any] = {
        **common("kws_keyword", "Keyword"),
        "state_topic": topics.event_topic(device_id, bundle.task),
        "event_types": head.detectable,
        # Event messages nest the task's event under "event" (device_sim/mqtt/payload.py). HA wants
        # a JSON object with "event_type"; the other keys become attributes of the fired event.
        "value_template": "{{ {'event_type': value_json.event.label, "
        "'score': value_json.event.score | default(None)} | to_json }}",
        "icon": "mdi:microphone-message",
    }
    return [("event", "kws_keyword", config)]
