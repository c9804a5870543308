"""The MQTT topic tree of a tinyfleet fleet (documented in ``docs/mqtt.md``).

::

    tinyfleet/<device>/status                 retained "online" / "offline" (the Last Will)
    tinyfleet/<device>/health                 retained JSON: outbox writable or not (a full disk)
    tinyfleet/<device>/<task>/prediction      one JSON message per window (QoS 0 by default)
    tinyfleet/<device>/<task>/event           keyword detected, alarm raised/cleared, band change (QoS 1)
    tinyfleet/<device>/<task>/model           retained identity of the model the device runs
    tinyfleet/<device>/rollout/...            commands to the device (model rollout, ops engineer)

Device ids, task names, user names and shared-subscription groups all pass one check,
:func:`check_id`: they become topic levels, mosquitto user names, ACL lines and password-file lines,
so a character that means something in any of those (``/ + # % : $``, spaces, newlines) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from device_sim.errors import ConfigError

PREFIX = "tinyfleet"
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
ALL_PREDICTIONS = f"{PREFIX}/+/+/prediction"
ALL_EVENTS = f"{PREFIX}/+/+/event"
ALL_STATUS = f"{PREFIX}/+/status"
MAX_ID_LENGTH = 64
# fullmatch, never ``^...$``: ``$`` also matches before a trailing newline ("dev-x\n"), which
# split lines in the broker's passwd and acl files (issue #20, row 2).
_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID_LENGTH - 1}}}")


def is_valid_id(value: object) -> bool:
    """True when ``value`` passes :func:`check_id` (for hot paths that count instead of raising)."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, what: str = "device id") -> str:
    """Return ``value`` if it is a valid id or name; otherwise a ConfigError saying what is allowed.

    The one check for every id and name: topic levels, mosquitto users, ACL and password entries.
    """
    if not is_valid_id(value):
        raise ConfigError(
            f"{what} {value!r} is not allowed: use 1-{MAX_ID_LENGTH} letters, digits, '_', '.' or "
            "'-', starting with a letter or digit (no '/', '+', '#', '%', ':', spaces or newlines)"
        )
    return value


def status_topic(device: str) -> str:
    return f"{PREFIX}/{device}/status"


def health_topic(device: str) -> str:
    """Retained JSON: conditions a device wants an operator to see (e.g. its outbox is full)."""
    return f"{PREFIX}/{device}/health"


def prediction_topic(device: str, task: str) -> str:
    return f"{PREFIX}/{device}/{task}/prediction"


def event_topic(device: str, task: str) -> str:
    return f"{PREFIX}/{device}/{task}/event"


def model_topic(device: str, task: str) -> str:
    return f"{PREFIX}/{device}/{task}/model"


def rollout_filter(device: str) -> str:
    """Everything the rollout service sends to one device."""
    return f"{PREFIX}/{device}/rollout/#"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: the broker splits matching messages across the group."""
    check_id(group, "shared-subscription group")
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True)
class TopicParts:
    device: str
    task: str | None  # None for device-level topics (status)
    kind: str  # "status", "prediction", "event", "model", "rollout"


def parse_topic(topic: str) -> TopicParts | None:
    """Split a tinyfleet topic into device, task and kind; None if it is not one of ours."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != PREFIX:
        return None
    if len(parts) == 3 and parts[2] == "status":
        return TopicParts(parts[1], None, "status")
    if parts[2] == "rollout":
        return TopicParts(parts[1], None, "rollout")
    if len(parts) == 4 and parts[3] in ("prediction", "event", "model"):
        return TopicParts(parts[1], parts[2], parts[3])
    return None
