"""The MQTT topic tree of a tinyfleet fleet (documented in ``docs/mqtt.md``).

::

    tinyfleet/<device>/status                 retained "online" / "offline" (the Last Will)
    tinyfleet/<device>/health                 retained JSON: outbox writable or not (a full disk)
    tinyfleet/<device>/<task>/prediction      one JSON message per window (QoS 0 by default)
    tinyfleet/<device>/<task>/event           keyword detected, alarm raised/cleared, band change (QoS 1)
    tinyfleet/<device>/<task>/model           retained identity of the model the device runs
    tinyfleet/<device>/<task>/health          retained JSON from ``tinyfleet monitor``: ok/drift/silent
    tinyfleet/<device>/rollout/<rid>/offer    model rollout, operator → device (docs/security.md)
    tinyfleet/<device>/rollout/<rid>/chunk/<i>
    tinyfleet/<device>/rollout/state          retained rollout report, device → operator

This module is the only place that builds these names (``*_topic`` functions) and splits them
(:func:`parse_topic`); everyone else calls it.

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
ALL_TOPICS = f"{PREFIX}/#"
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


def task_health_topic(device: str, task: str) -> str:
    """Retained JSON from ``tinyfleet monitor``: the (device, task)'s health (ok, drift, silent)."""
    return f"{PREFIX}/{device}/{task}/health"


def device_filter(device: str) -> str:
    """Every topic of one device (what a device's ACL lets it read and write)."""
    return f"{PREFIX}/{device}/#"


def rollout_filter(device: str) -> str:
    """Everything the rollout service sends to one device."""
    return f"{PREFIX}/{device}/rollout/#"


def rollout_offer_topic(device: str, rollout_id: str) -> str:
    return f"{PREFIX}/{device}/rollout/{rollout_id}/offer"


def rollout_chunk_topic(device: str, rollout_id: str, index: int) -> str:
    return f"{PREFIX}/{device}/rollout/{rollout_id}/chunk/{index}"


def rollout_state_topic(device: str) -> str:
    return f"{PREFIX}/{device}/rollout/state"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: the broker splits matching messages across the group."""
    check_id(group, "shared-subscription group")
    return f"$share/{group}/{topic_filter}"


def unshared(topic_filter: str) -> str:
    """The plain filter of a shared subscription (``$share/<group>/<filter>`` → ``<filter>``)."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter


TASK_KINDS = ("prediction", "event", "model", "health")  # tinyfleet/<device>/<task>/<kind>


@dataclass(frozen=True)
class TopicParts:
    """A tinyfleet topic split into its levels (see the tree above).

    ``kind`` is ``status`` or ``health`` (device topics, ``task`` None), one of :data:`TASK_KINDS`
    (``task`` set), or ``rollout_offer`` / ``rollout_chunk`` (``rollout_id`` set, ``chunk`` the
    index) / ``rollout_state``.
    """

    device: str
    task: str | None
    kind: str
    rollout_id: str | None = None
    chunk: int | None = None


def parse_topic(topic: str) -> TopicParts | None:
    """Split a tinyfleet topic into its parts; None if it is not one of the tree's topics.

    Only the shape is checked, not the ids: identity checks belong to the reader (a subscriber
    compares the payload with :func:`prediction_topic`, the rollout receiver with its own id).
    """
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != PREFIX or not parts[1]:
        return None
    device, rest = parts[1], parts[2:]
    if rest in (["status"], ["health"]):
        return TopicParts(device, None, rest[0])
    if rest[0] == "rollout":
        if rest == ["rollout", "state"]:
            return TopicParts(device, None, "rollout_state")
        if len(rest) == 3 and rest[2] == "offer":
            return TopicParts(device, None, "rollout_offer", rollout_id=rest[1])
        if len(rest) == 4 and rest[2] == "chunk" and rest[3].isascii() and rest[3].isdigit():
            return TopicParts(device, None, "rollout_chunk", rollout_id=rest[1], chunk=int(rest[3]))
        return None
    if len(rest) == 2 and rest[1] in TASK_KINDS:
        return TopicParts(device, rest[0], rest[1])
    return None
