"""Print every Home Assistant discovery config tinyfleet publishes, as JSON (for `make check-ha`).

Runs in the project's venv. With bundle folders as arguments it uses their heads (what a device
running them announces); without, example heads of all three tasks shaped like the training stages
write them (KWS labels, vibration alarm, air-quality targets with the models' units and bands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from device_sim.bundle import Bundle, QuantizedTensor, load_bundle
from device_sim.mqtt.ha_discovery import discovery_messages
from device_sim.tasks.air_quality import DEFAULT_BANDS

EXAMPLE_HEADS = {
    "kws": {
        "labels": [
            "_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
            "stop", "go",
        ]
    },
    "vibration": {"anomaly_threshold": 1.0, "alarm_k": 5, "alarm_n": 8},
    "air_quality": {
        "targets": [
            {"key": "CO", "name": "CO(GT)", "unit": "mg/m³"},
            {"key": "NO2", "name": "NO2(GT)", "unit": "µg/m³"},
            {"key": "C6H6", "name": "C6H6(GT)", "unit": "µg/m³"},
        ],
        "bands": DEFAULT_BANDS,
    },
}  # fmt: skip


def example_bundles() -> list[Bundle]:
    return [
        Bundle(
            directory=Path("."),
            task=task,
            name=f"{task}-example",
            version="20260101.000000-00000000",
            input=QuantizedTensor((1, 4), "int8", 0.1, 0),
            output=QuantizedTensor((1, 4), "int8", 0.1, 0),
            feature_config={},
            head=head,
            model_sha256="00" * 32,
        )
        for task, head in EXAMPLE_HEADS.items()
    ]


def main(argv: list[str]) -> int:
    bundles = [load_bundle(path) for path in argv] or example_bundles()
    messages = discovery_messages("example-node", bundles)
    json.dump([{"topic": m.topic, "config": m.config} for m in messages], sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
