"""Durability with real processes: a broker crash followed at once by a device crash.

mosquitto acknowledges a QoS 1 message before it saves it; the device therefore keeps what was
acknowledged in its SQLite outbox until a later round trip proves the save. Here the broker is
SIGKILLed and the device process SIGKILLed within a second after it, both are restarted, and every
prediction the device ever committed must arrive.
"""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from ops.broker import MosquittoBroker
from ops.subscriber import Subscriber
from tests.fleet_fixtures import (
    Collector,
    expected_keys,
    start_cli,
    tiny_vibration_bundle,
    wait_for,
)


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


@pytest.mark.slow
def test_broker_then_device_killed_within_a_second_lose_no_prediction(tmp_path, bundle):
    state = tmp_path / "state"
    run = [
        "simulate", "--devices", "4", "--device-prefix", "dk", "--bundles", str(bundle.directory),
        "--rate", "150", "--qos", "1", "--state-dir", str(state),
    ]  # fmt: skip
    rng = random.Random()
    with MosquittoBroker(tmp_path / "broker", persistence=True) as broker:
        collector = Collector()
        subscriber = Subscriber(broker.url, client_id="durable-sub", on_prediction=collector)
        subscriber.start().wait_connected()
        first = start_cli(*run, "--broker", broker.url, "--max-windows", "2000")
        try:
            assert wait_for(lambda: len(collector.keys) > 1700, 90), (
                first.stderr.read() if first.poll() is not None else "too slow"
            )
            broker.kill()
            time.sleep(rng.uniform(0.1, 0.9))  # the device crashes within a second, too
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        broker.start()
        second = start_cli(*run, "--broker", broker.url, "--max-windows", "100", "--json")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err[-2000:]
        expected = expected_keys(state)
        assert wait_for(lambda: set(collector.keys) >= expected, 30), (
            f"{len(expected - set(collector.keys))} of {len(expected)} never arrived"
        )
        subscriber.close()
    report = json.loads(out)
    assert report["published"]["undelivered"] == 0
    assert len(expected) >= 2000
    assert set(collector.keys) == expected  # received set == published set


def test_acknowledged_but_unconfirmed_messages_survive_a_device_crash(tmp_path):
    """The mechanism, without timing luck: a held message is still a row after a crash, so the
    restarted device sends it again; one released after a later round trip is gone."""
    from device_sim.mqtt.spool import Spool, SpoolDB

    db = SpoolDB(tmp_path / "s.sqlite")
    spool = Spool(db, "dev")
    for seq in range(3):
        spool.append(f"t/{seq}", b"%d" % seq, 1, seq_task="kws", seq=seq)
    first, second, third = spool.pending(0, 10)
    spool.ack(first.id, hold=True)  # PUBACK seen; the broker may not have saved it yet
    spool.ack(second.id, hold=True)
    spool.release([first.id])  # a later PUBACK proved the save of the first one
    spool.ack(third.id)  # QoS-0-like: nothing to hold
    db.commit()
    assert len(spool) == 0 and spool.held == 1
    crashed = Spool(SpoolDB(tmp_path / "s.sqlite"), "dev")  # the process died here
    assert [m.payload for m in crashed.pending(0, 10)] == [b"1"]
