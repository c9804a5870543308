"""Predictions into a real PostgreSQL (Debian's server, started by the test): dedup by primary key,
batches kept across a database crash, and the broker-restart zero-loss guarantee end to end."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import redirect_stdout

import pytest

from device_sim.fleet import FleetOptions, run_fleet
from device_sim.mqtt.payload import receive_prediction
from ops.broker import MosquittoBroker
from ops.subscriber import Subscriber
from tests.fleet_fixtures import Collector, expected_keys, tiny_vibration_bundle, wait_for
from tests.postgres_fixtures import PostgresServer

pytest.importorskip("psycopg", reason="needs psycopg 3 (pip install 'tinyfleet[postgres]')")


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


def _payload(device: str, seq: int, score: float = 1.5) -> bytes:
    return json.dumps(
        {
            "schema": 1,
            "device": device,
            "task": "vibration",
            "model": {"name": "m", "version": "v1", "sha256": "ab" * 32},
            "ts": "2026-12-02T12:00:00Z",
            "ts_ms": 1_796_212_800_000 + seq,
            "seq": seq,
            "window": {"start_ms": 1_796_212_799_000 + seq, "end_ms": 1_796_212_800_000 + seq},
            "valid": True,
            "anomaly_score": score,
            "alarm": False,
        }
    ).encode()


def _database(postgres: PostgresServer, name: str) -> str:
    import psycopg

    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.database_url(name)


def test_postgres_store_drops_duplicates_and_keeps_batches_across_a_database_crash(postgres):
    import psycopg

    from ops.store_postgres import PostgresPredictionStore, open_store

    url = _database(postgres, "dedup")
    store = open_store(url, commit_every=50)
    assert isinstance(store, PostgresPredictionStore) and store.hypertable is False
    for seq in [*range(120), *range(100, 130)]:  # 20 duplicates inside and across batches
        payload = _payload("press-1", seq)
        store.add(receive_prediction("tinyfleet/press-1/vibration/prediction", payload, seq))
    assert store.count() == 130 and store.inserted == 130
    assert store.keys() == {("press-1", "vibration", s) for s in range(130)}

    # the database crashes: batches stay queued and land after it is back
    postgres.kill()
    for seq in range(130, 200):
        payload = _payload("press-1", seq)
        store.add(receive_prediction("tinyfleet/press-1/vibration/prediction", payload, seq))
    store.commit()
    assert store.pending == 70
    postgres.start()
    store.commit()
    assert store.pending == 0 and store.count() == 200
    store.close()

    # reopened: rows from earlier runs count as seen; the payload is queryable JSON
    again = open_store(url)
    payload = _payload("press-1", 5)
    again.add(receive_prediction("tinyfleet/press-1/vibration/prediction", payload, 0))
    again.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT COUNT(*), MAX((payload->>'anomaly_score')::float), MIN(ts) FROM predictions"
        ).fetchone()
        key = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'predictions'::regclass "
            "AND i.indisprimary ORDER BY a.attname"
        ).fetchall()
    assert rows[0] == 200 and rows[1] == 1.5 and rows[2].year == 2026
    assert [name for (name,) in key] == ["device", "seq", "task"]


def test_subscribe_cli_stores_into_postgres(postgres, bundle, tmp_path):
    from ops.store_postgres import open_store
    from tinyfleet.cli import main

    url = _database(postgres, "cli")
    with MosquittoBroker(tmp_path / "broker") as broker:
        output = io.StringIO()
        argv = ["subscribe", "--broker", broker.url, "--store", url, "--count", "60"]
        argv += ["--duration", "60", "--json"]
        status: list[int] = []

        def subscribe() -> None:
            with redirect_stdout(output):
                status.append(main(argv))

        thread = threading.Thread(target=subscribe)
        thread.start()
        time.sleep(1.5)  # connected and subscribed
        run_fleet(
            FleetOptions(
                broker.url,
                [bundle],
                devices=3,
                rate_hz=50,
                max_windows=20,
                prediction_qos=1,
                state_dir=tmp_path / "state",
            )
        )
        thread.join(60)
    assert status == [0]
    summary = json.loads(output.getvalue().splitlines()[-1])["summary"]
    assert summary["predictions"] == 60
    store = open_store(url)
    assert store.keys() == expected_keys(tmp_path / "state")
    store.close()


def test_broker_killed_and_restarted_loses_no_prediction_on_the_way_into_postgres(
    postgres, bundle, tmp_path
):
    from ops.store_postgres import open_store

    url = _database(postgres, "reliable")
    with MosquittoBroker(tmp_path / "broker", persistence=True) as broker:
        collector = Collector()
        subscriber = Subscriber(
            broker.url,
            client_id="postgres-sub",
            store=open_store(url, commit_every=200),
            on_prediction=collector,
        )
        subscriber.start().wait_connected()
        options = FleetOptions(
            broker.url,
            [bundle],
            devices=4,
            rate_hz=150,
            max_windows=300,  # 1,200 predictions
            prediction_qos=1,
            state_dir=tmp_path / "state",
        )
        reports: list[dict] = []
        runner = threading.Thread(target=lambda: reports.append(run_fleet(options)))
        runner.start()
        assert wait_for(lambda: len(collector.keys) > 200, 60)
        broker.kill()
        time.sleep(0.7)
        broker.start()
        runner.join(60)
        expected = expected_keys(tmp_path / "state")
        assert wait_for(lambda: set(collector.keys) >= expected, 30)
        subscriber.close()  # flushes the last batch
    assert reports[0]["reconnects"] >= 4
    assert len(expected) == reports[0]["published"]["predictions"] == 1200
    stored = open_store(url)
    try:
        assert stored.keys() == expected  # every published prediction, each once
        assert stored.count() == len(expected)
    finally:
        stored.close()
