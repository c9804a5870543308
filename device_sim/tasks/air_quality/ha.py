"""Home Assistant entities for air quality: one sensor per target, and the air-quality band.

CO is published in ppm (device class ``carbon_monoxide``: ppm is the one unit every Home Assistant
release accepts for it; 2025.7–2025.10 reject mg/m³ outright), converted by the value template from
the model's mg/m³ at 25 °C and 1013.25 hPa (:data:`CO_PPM_PER_MG_M3`); NO2 in µg/m³
(``nitrogen_dioxide``), benzene in µg/m³ (``volatile_organic_compounds``, the only class for a VOC
mass concentration).
"""

from __future__ import annotations

import re

from device_sim.bundle import Bundle
from device_sim.mqtt import topics
from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.air_quality.runtime import DEFAULT_BANDS
from device_sim.tasks.spec import CommonKeys, HaEntity

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


def ha_entities(device_id: str, bundle: Bundle, common: CommonKeys) -> list[HaEntity]:
    head = AirQualityHead.from_dict(bundle.head)
    state = topics.prediction_topic(device_id, bundle.task)
    entities: list[HaEntity] = []
    for target in head.targets:
        key, model_unit = str(target["key"]), str(target["unit"])
        object_id = "air_quality_" + re.sub(r"[^a-z0-9_]", "_", key.lower())  # HA: [a-z0-9_-]
        device_class, class_unit, friendly = AIR_QUALITY_CLASSES.get(key, (None, None, key))
        unit, factor = UNIT_CONVERSIONS.get((key, model_unit), (model_unit, 1.0))
        value = f"value_json.estimates['{key}'].value"
        if factor != 1.0:
            value = f"({value} * {factor:.6f}) | round(3)"
        config = {
            **common(object_id, f"{friendly} ({key})"),
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
    bands = (head.bands or DEFAULT_BANDS).get("names")  # as the task runtime does
    band = {
        **common("air_quality_band", "Air quality band"),
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
