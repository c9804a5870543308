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
