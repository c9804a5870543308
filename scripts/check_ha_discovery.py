"""Validate tinyfleet's discovery configs with Home Assistant's own code (run in the HA venv).

Reads the JSON written by scripts/ha_discovery_configs.py and, for every config, applies what Home
Assistant's MQTT integration applies to a discovery payload:

* the platform's ``DISCOVERY_SCHEMA`` (``homeassistant.components.mqtt.<component>``) — keys and
  types; a key this version's schema silently drops (REMOVE_EXTRA) is noted, not failed: the
  entity works, the key is just unused (e.g. sensor ``options`` before MQTT supported it);
* for sensors, the units HA accepts per device class (``DEVICE_CLASS_UNITS``) and the state
  classes per device class (``DEVICE_CLASS_STATE_CLASSES``);
* every template compiled and syntax-checked by HA's template engine (``Template.ensure_valid``).

Prints one line per config and exits 1 if any is refused.
"""

from __future__ import annotations

import importlib
import json
import sys

import voluptuous as vol
from homeassistant.components.sensor.const import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    SensorDeviceClass,
)
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.helpers.template import Template

TEMPLATE_KEYS = ("value_template", "json_attributes_template", "availability_template")


def check(topic: str, config: dict) -> tuple[list[str], list[str]]:
    """(problems that make Home Assistant refuse or misread the entity, notes)."""
    component = topic.split("/")[1]
    module = importlib.import_module(f"homeassistant.components.mqtt.{component}")
    problems: list[str] = []
    try:
        validated = module.DISCOVERY_SCHEMA(dict(config))
    except vol.Invalid as exc:
        return [f"schema: {exc}"], []
    dropped = sorted(set(config) - set(validated))
    notes = [f"keys this version ignores: {dropped}"] if dropped else []
    for key in TEMPLATE_KEYS:
        if key in config:
            try:
                Template(config[key]).ensure_valid()
            except Exception as exc:  # HA raises TemplateError; report whatever it says
                problems.append(f"{key}: {exc}")
    device_class = validated.get("device_class")
    if component == "sensor" and device_class is not None:
        device_class = SensorDeviceClass(device_class)
        unit = validated.get("unit_of_measurement")
        allowed = DEVICE_CLASS_UNITS.get(device_class)
        if allowed is not None and unit not in allowed:
            problems.append(
                f"unit {unit!r} not valid for device class {device_class.value} "
                f"(allowed: {sorted(str(u) for u in allowed)})"
            )
        state_class = validated.get("state_class")
        allowed_states = DEVICE_CLASS_STATE_CLASSES.get(device_class)
        if None not in (state_class, allowed_states) and state_class not in allowed_states:
            problems.append(f"state class {state_class} not valid for {device_class.value}")
    return problems, notes


def main(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        messages = json.load(file)
    failures = 0
    for message in messages:
        problems, notes = check(message["topic"], message["config"])
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {message['topic']}")
        for problem in problems:
            print(f"     {problem}")
        for note in notes:
            print(f"     note: {note}")
    print(f"Home Assistant {HA_VERSION}: {len(messages) - failures}/{len(messages)} configs valid")
    return 1 if failures or not messages else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
