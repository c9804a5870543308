"""The subscriber's store writes a received prediction within its commit interval, even when no
further message arrives, and records when (``stored_ms``) for window-ready → stored latency."""

from __future__ import annotations

import sqlite3
import time

import pytest

from device_sim.mqtt import topics
from device_sim.mqtt.client import Connection, NetworkLoop, parse_broker_url
from device_sim.mqtt.payload import encode_prediction
from ops.broker import MosquittoBroker
from ops.store import PredictionStore
from ops.subscriber import Subscriber
from tests.fleet_fixtures import wait_for


@pytest.fixture
def broker(tmp_path):
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


def _stored(path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT window_end_ms, received_ms, stored_ms FROM predictions"
        ).fetchall()


def test_a_lone_prediction_is_stored_within_the_commit_interval(tmp_path, broker):
    path = tmp_path / "predictions.sqlite"
    store = PredictionStore(path, commit_every=500, commit_interval_s=0.05)
    subscriber = Subscriber(broker.url, store=store).start().wait_connected()
    loop = NetworkLoop()
    device = loop.add(Connection("tinyfleet-dev-1", parse_broker_url(broker.url), clean=True))
    try:
        while not device.connected:
            loop.run_once(0.05)
        time.sleep(0.2)  # the store's last commit is older than its interval
        end_ms = int(time.time() * 1000)
        for seq in range(2):  # the second one waits for the first one's batch
            payload = encode_prediction(
                device="dev-1",
                task="demo",
                model={"name": "m", "version": "1", "sha256": "0" * 64},
                seq=seq,
                window_start_ms=end_ms - 1000,
                window_end_ms=end_ms,
                fields={"label": "yes"},
            )
            device.publish(topics.prediction_topic("dev-1", "demo"), payload, 1)
        loop.flush([device], timeout=2.0)
        # nothing else arrives: the loop's timer, not a later message, commits the batch
        assert wait_for(lambda: len(_stored(path)) == 2, timeout=5.0)
        for window_end_ms, received_ms, stored_ms in _stored(path):
            assert window_end_ms <= received_ms <= stored_ms
            assert stored_ms - received_ms < 1000  # 50 ms interval, plus a busy machine's delays
    finally:
        loop.close()
        subscriber.close()


def test_a_store_written_before_stored_ms_existed_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE predictions (device TEXT NOT NULL, task TEXT NOT NULL, seq INTEGER NOT "
            "NULL, ts_ms INTEGER NOT NULL, window_start_ms INTEGER NOT NULL, window_end_ms "
            "INTEGER NOT NULL, received_ms INTEGER NOT NULL, valid INTEGER NOT NULL, "
            "model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL, payload TEXT NOT NULL, "
            "PRIMARY KEY (device, task, seq)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO predictions VALUES ('d', 't', 0, 0, 0, 0, 0, 1, 'v', 's', '{}')")
    store = PredictionStore(path)
    assert store.keys() == {("d", "t", 0)}
    assert store.commit_due_in() is None
    store.close()
