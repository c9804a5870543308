"""``topics`` is the one place that builds and splits topic names: what it builds, it parses back."""

from __future__ import annotations

import pytest

from device_sim.mqtt import topics
from device_sim.mqtt.topics import TopicParts, parse_topic


@pytest.mark.parametrize(
    ("topic", "parts"),
    [
        (topics.status_topic("dev-1"), TopicParts("dev-1", None, "status")),
        (topics.health_topic("dev-1"), TopicParts("dev-1", None, "health")),
        (topics.prediction_topic("dev-1", "kws"), TopicParts("dev-1", "kws", "prediction")),
        (topics.event_topic("dev-1", "kws"), TopicParts("dev-1", "kws", "event")),
        (topics.model_topic("dev-1", "kws"), TopicParts("dev-1", "kws", "model")),
        (topics.task_health_topic("dev-1", "kws"), TopicParts("dev-1", "kws", "health")),
        (topics.rollout_state_topic("dev-1"), TopicParts("dev-1", None, "rollout_state")),
        (
            topics.rollout_offer_topic("dev-1", "r1"),
            TopicParts("dev-1", None, "rollout_offer", rollout_id="r1"),
        ),
        (
            topics.rollout_chunk_topic("dev-1", "r1", 7),
            TopicParts("dev-1", None, "rollout_chunk", rollout_id="r1", chunk=7),
        ),
    ],
)
def test_every_built_topic_parses_back_to_its_parts(topic: str, parts: TopicParts) -> None:
    assert parse_topic(topic) == parts


@pytest.mark.parametrize(
    "topic",
    [
        "homeassistant/status",
        "tinyfleet",
        "tinyfleet/dev-1",
        "tinyfleet//status",
        "tinyfleet/dev-1/kws/unknown",
        "tinyfleet/dev-1/kws/prediction/extra",
        "tinyfleet/dev-1/rollout/r1/chunk/x",
        "tinyfleet/dev-1/rollout/r1/chunk/²",
        "tinyfleet/dev-1/rollout/r1/other",
    ],
)
def test_topics_outside_the_tree_are_not_parsed(topic: str) -> None:
    assert parse_topic(topic) is None


def test_a_shared_subscription_unwraps_to_its_filter() -> None:
    shared = topics.shared("workers", topics.ALL_PREDICTIONS)
    assert topics.unshared(shared) == topics.ALL_PREDICTIONS
    assert topics.unshared(topics.ALL_EVENTS) == topics.ALL_EVENTS


def test_the_fleet_snapshot_reads_topics_through_parse_topic() -> None:
    """A device's retained rollout report is not a task: the snapshot, like the live page (which
    never subscribes to it), shows no ``rollout`` row for it; it still counts as a message."""
    from ops.fleet_view import FleetState

    state = FleetState()
    state.update(topics.status_topic("dev-1"), b"online")
    state.update(topics.rollout_state_topic("dev-1"), b'{"state": "accepted"}')
    state.update(topics.model_topic("dev-1", "kws"), b'{"name": "kws", "version": "v1"}')
    state.update("homeassistant/status", b"online")
    assert state.status == {"dev-1": "online"}
    assert list(state.tasks) == [("dev-1", "kws")]
    assert state.messages == 3
