"""Issue #20: what an adversarial review reproduced, each against the real component.

Rows 1-7 of the issue (the rollout rows 8-10 are tested in tests/test_ops_rollout.py) and the bound
on a bundle's front-end sizes. Broker rows run a real mosquitto with the secure config (TLS,
passwords, ACL), exactly as ``tinyfleet broker --secure`` starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ops_fixtures import Collector, close, connect, subscribe

from device_sim.errors import BundleError, ConfigError
from device_sim.mqtt import topics
from device_sim.mqtt.client import Credentials
from device_sim.mqtt.payload import PayloadError, encode_prediction, parse_prediction
from ops import security
from ops.broker import MosquittoBroker, mosquitto_binary
from ops.store import PredictionStore
from ops.subscriber import Subscriber
from tinyfleet.cli import main

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto")

MODEL = {"name": "aq", "version": "v1", "sha256": "ab" * 32}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def secure(tmp_path):
    """A TLS mosquitto with two devices, a subscriber and an operator (as test_ops_security)."""
    lines = security.secure_broker_config(tmp_path)
    users = {
        name: security.add_credentials(tmp_path, name, role, reload=False)
        for name, role in (
            ("dev-a", "device"),
            ("dev-b", "device"),
            ("dash", "subscriber"),
            ("ops", "operator"),
        )
    }
    broker = MosquittoBroker(tmp_path, extra_config=lines).start()
    yield broker, tmp_path, users
    broker.close()


def _login(secure, name: str, collector: Collector | None = None) -> mqtt.Client:
    broker, state_dir, users = secure
    client, rc = connect(
        broker.port,
        username=name,
        password=users[name],
        ca_file=state_dir / security.CA_CERT,
        collector=collector,
    )
    assert rc == 0, f"{name} could not connect (CONNACK {rc})"
    return client


def _subscriber(secure, **kwargs) -> Subscriber:
    broker, state_dir, users = secure
    credentials = Credentials("dash", users["dash"], state_dir / security.CA_CERT)
    url = f"mqtts://127.0.0.1:{broker.port}"
    return Subscriber(url, credentials=credentials, **kwargs).start().wait_connected()


def _body(device: str, seq: int, task: str = "air_quality", **fields) -> bytes:
    return encode_prediction(
        device=device,
        task=task,
        model=MODEL,
        seq=seq,
        window_start_ms=1000 + seq,
        window_end_ms=2000 + seq,
        fields=fields or {"band": "low"},
    )


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]], retain=False) -> None:
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


# -- row 1: identity comes from the topic ---------------------------------------------------------
def test_a_device_cannot_store_predictions_as_another_device_nor_shadow_its_seqs(secure, tmp_path):
    store = PredictionStore(tmp_path / "store.sqlite")
    subscriber = _subscriber(secure, store=store)
    dev_a, dev_b = _login(secure, "dev-a"), _login(secure, "dev-b")
    # dev-a, on its OWN topic (the ACL allows it), claims to be dev-b with seq 0-4
    _publish_all(
        dev_a,
        [(topics.prediction_topic("dev-a", "air_quality"), _body("dev-b", s)) for s in range(5)],
    )
    _publish_all(
        dev_b,
        [
            (topics.prediction_topic("dev-b", "air_quality"), _body("dev-b", s, band="genuine"))
            for s in range(5)
        ],
    )
    assert _wait(lambda: subscriber.received >= 10)
    subscriber.close()
    close(dev_a, dev_b)
    stored = PredictionStore(tmp_path / "store.sqlite")
    assert stored.keys() == {("dev-b", "air_quality", s) for s in range(5)}
    payloads = [
        json.loads(row[0]) for row in stored._conn.execute("SELECT payload FROM predictions")
    ]
    assert all(p["band"] == "genuine" for p in payloads)  # dev-b's own rows, not dev-a's
    summary = subscriber.summary()
    assert summary["identity_mismatch"] == 5 and summary["duplicates"] == 0
    assert set(summary["devices"]) == {"dev-b"}


def test_the_store_refuses_a_row_whose_body_disagrees_with_its_topic(tmp_path):
    from device_sim.mqtt.payload import Received

    store = PredictionStore(tmp_path / "s.sqlite")
    spoof = Received(
        topics.prediction_topic("dev-a", "air_quality"),
        parse_prediction(_body("dev-b", 0)),
        _body("dev-b", 0),
        0,
    )
    result = store.insert_batch([spoof])
    assert (result.inserted, result.refused) == (0, 1)
    assert store.keys() == set()


# -- row 5: per-device state is bounded per account ----------------------------------------------
def test_one_device_account_cannot_create_unbounded_subscriber_state(secure):
    subscriber = _subscriber(secure, max_tasks_per_device=4)
    dev_a = _login(secure, "dev-a")
    fake_devices = [
        (topics.prediction_topic("dev-a", "air_quality"), _body(f"fake-{i}", 0)) for i in range(300)
    ]
    fake_tasks = [
        (topics.prediction_topic("dev-a", f"task{i}"), _body("dev-a", 0, f"task{i}"))
        for i in range(20)
    ]
    _publish_all(dev_a, fake_devices + fake_tasks)
    assert _wait(lambda: subscriber.received >= 320)
    subscriber.close()
    close(dev_a)
    assert set(subscriber.stats) == {"dev-a"}
    assert len(subscriber.stats["dev-a"].trackers) == 4
    summary = subscriber.summary()
    assert summary["identity_mismatch"] == 300 and summary["over_limit"] == 16


# -- row 2: one anchored name check; the broker never gets a file it cannot load ------------------
@pytest.mark.parametrize("bad", ["dev-x\n", "dev-x\r\n", "dev\nuser ops", "dev-x\x00"])
def test_a_name_with_a_trailing_newline_is_refused_everywhere(bad, tmp_path, capsys):
    for check in (topics.check_id, security.check_name):
        with pytest.raises(ConfigError, match="not allowed"):
            check(bad)
    assert main(["credentials", "add", bad, "--state-dir", str(tmp_path)]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert not (tmp_path / security.ACL_FILE).exists()


def test_a_bad_name_in_users_json_never_reaches_the_running_brokers_acl(secure, capsys):
    broker, state_dir, users = secure
    users_file = state_dir / security.USERS_FILE
    table = json.loads(users_file.read_text())
    table["dev-x\n"] = dict(table["dev-a"])  # e.g. ids read from a file, newline kept
    users_file.write_text(json.dumps(table))
    acl_before = (state_dir / security.ACL_FILE).read_bytes()
    with pytest.raises(ConfigError, match="not allowed"):
        security.add_credentials(state_dir, "dev-c", "device")
    assert (state_dir / security.ACL_FILE).read_bytes() == acl_before
    # the broker still enforces the ACL: dev-a cannot publish under dev-b
    seen = Collector()
    dash = _login(secure, "dash", seen)
    subscribe(dash, "tinyfleet/#")
    dev_a = _login(secure, "dev-a")
    dev_a.publish("tinyfleet/dev-b/kws/prediction", b"spoofed", qos=1).wait_for_publish(5)
    dev_a.publish("tinyfleet/dev-a/kws/prediction", b"genuine", qos=1).wait_for_publish(5)
    assert seen.wait_for(lambda m: len(m) >= 1)
    time.sleep(0.3)
    assert seen.topics() == ["tinyfleet/dev-a/kws/prediction"]
    close(dash, dev_a)
    assert broker.is_running()


def test_broker_files_are_checked_by_mosquitto_before_a_reload():
    good = security.acl_text({"dev-a": {"role": "device", "hash": "x"}})
    security.check_broker_files("dev-a:$7$1000$c2FsdA==$ZGln\n", good)
    with pytest.raises(ConfigError, match="mosquitto cannot load"):
        security.check_broker_files("", good + "user\n")


# -- row 3: the store commits or rolls back per batch; the parser checks ranges and encodings ----
BAD_BODIES = {
    "seq 2**63": _body("dev-a", 0).replace(b'"seq":0', b'"seq":9223372036854775808'),
    "lone surrogate": _body("dev-a", 1).replace(b'"version":"v1"', b'"version":"v\\ud800"'),
    "utf-16 json": _body("dev-a", 2).decode().encode("utf-16"),
    "huge timing": _body("dev-a", 3).replace(b'"timing_ms":{}', b'"timing_ms":{"x":1e999}'),
    "NaN": _body("dev-a", 4).replace(b'"band":"low"', b'"band":NaN'),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_the_parser_refuses_what_sqlite_or_strict_json_cannot_hold(name):
    with pytest.raises(PayloadError):
        parse_prediction(BAD_BODIES[name])


def test_one_unstorable_message_does_not_wedge_the_store(secure, tmp_path):
    store = PredictionStore(tmp_path / "store.sqlite", commit_every=5)
    subscriber = _subscriber(secure, store=store)
    dev_a = _login(secure, "dev-a")
    topic = topics.prediction_topic("dev-a", "air_quality")
    good = [(topic, _body("dev-a", s)) for s in range(10, 30)]
    bad = [(topic, body) for body in BAD_BODIES.values()]
    _publish_all(dev_a, good[:3] + bad + good[3:])
    assert _wait(lambda: subscriber.received >= len(good) + len(bad))
    subscriber.close()
    close(dev_a)
    assert PredictionStore(tmp_path / "store.sqlite").count() == len(good)
    assert subscriber.summary()["malformed"] == len(bad)


def test_a_row_sqlite_refuses_is_counted_and_skipped_and_the_batch_commits(tmp_path, caplog):
    from device_sim.mqtt.payload import Received

    store = PredictionStore(tmp_path / "s.sqlite")
    topic = topics.prediction_topic("dev-a", "air_quality")
    rows = [
        Received(topic, parse_prediction(_body("dev-a", s)), _body("dev-a", s), 0) for s in range(4)
    ]
    bad = parse_prediction(_body("dev-a", 9))
    object.__setattr__(bad, "seq", 2**63)  # what a parser without range checks let through
    rows.insert(2, Received(topic, bad, _body("dev-a", 9), 0))
    result = store.insert_batch(rows)
    assert (result.inserted, result.duplicates, result.refused) == (4, 0, 1)
    assert "refused" in caplog.text
    assert store.insert_batch(rows[:1]).duplicates == 1  # the connection is usable afterwards
    assert store.count() == 4


# -- row 4: the live table escapes control characters ---------------------------------------------
@pytest.mark.parametrize("output", ["table", "json"])
def test_subscribe_output_does_not_pass_terminal_escapes_through(output, secure, capsys):
    broker, state_dir, users = secure
    dev_a = _login(secure, "dev-a")
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x9b31m\u202e"
    raw_hostile = "\x9b31m\u202eevil"
    topic = topics.prediction_topic("dev-a", "kws")
    stop = threading.Event()

    def publish() -> None:
        seq = 0
        while not stop.is_set():
            body = _body("dev-a", seq, "kws", label=hostile)
            if output == "json":  # raw C1 and bidi characters are legal in strict JSON text
                body = json.dumps({**json.loads(body), "label": raw_hostile}, ensure_ascii=False)
            dev_a.publish(topic, body.encode() if isinstance(body, str) else body, qos=1)
            seq += 1
            time.sleep(0.1)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        code = main(
            [
                "subscribe",
                "--broker",
                f"mqtts://127.0.0.1:{broker.port}",
                "--ca",
                str(state_dir / security.CA_CERT),
                "--username",
                "dash",
                "--password",
                users["dash"],
                "--count",
                "2",
                "--duration",
                "20",
                *(["--json"] if output == "json" else []),
            ]
        )
    finally:
        stop.set()
        publisher.join(5)
        close(dev_a)
    out = capsys.readouterr().out
    assert code == 0 and "dev-a" in out
    assert not any(c in out for c in "\x1b\x07\x9b\u202e"), repr(out)
    if output == "table":
        assert "\\x1b]52" in out  # shown, escaped
    else:  # still the same JSON, with \u escapes
        assert json.loads(out.splitlines()[0])["label"] == raw_hostile


# -- row 7: passwords never need the command line --------------------------------------------------
def test_subscribe_reads_its_password_from_a_file_or_the_environment(secure, tmp_path):
    broker, state_dir, users = secure
    password_file = tmp_path / "dash.password"
    password_file.write_text(users["dash"] + "\n")
    base = [
        sys.executable,
        "-m",
        "tinyfleet.cli",
        "subscribe",
        "--json",
        "--broker",
        f"mqtts://127.0.0.1:{broker.port}",
        "--ca",
        str(state_dir / security.CA_CERT),
        "--username",
        "dash",
        "--duration",
        "4",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TINYFLEET_MQTT_PASSWORD", None)
    for extra, extra_env in (
        (["--password-file", str(password_file)], {}),
        ([], {"TINYFLEET_MQTT_PASSWORD": users["dash"]}),
    ):
        process = subprocess.Popen(
            base + extra, env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert users["dash"].encode() not in cmdline
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
        summary = json.loads(out.decode().strip().splitlines()[-1])["summary"]
        assert summary["messages"] == 0  # connected (a refused login exits 2)


@pytest.mark.parametrize("command", ["simulate", "device", "subscribe", "rollout"])
def test_every_connecting_command_takes_a_password_file(command, tmp_path):
    from tinyfleet.commands.fleet import mqtt_password

    password_file = tmp_path / "pw"
    password_file.write_text("s3cret\n")
    password_file.chmod(0o600)
    parser_args = ["--password-file", str(password_file), "--username", "u"]
    from tinyfleet.cli import build_parser

    required = {"device": ["--bundle", "b"], "rollout": ["--bundle", "b", "--devices", "d"]}
    args = build_parser().parse_args([command, *required.get(command, []), *parser_args])
    assert mqtt_password(args) == "s3cret"


# -- bundle front-end sizes are bounded before anything is allocated -----------------------------
@pytest.mark.parametrize(
    "config",
    [
        {"kind": "mfcc", "fft_length": 2**40},
        {"kind": "log_mel", "fft_length": 2**20, "n_mels": 2**20, "fmax_hz": 8000.0},
        {"kind": "vibration_bands", "window_samples": 2**40, "hop_samples": 2**39},
        {"kind": "vibration_bands", "window_samples": 2**22, "hop_samples": 2**21},
        {"kind": "vibration_bands", "n_bands": 2**40},
        {
            "kind": "air_quality_window",
            "inputs": ["T"],
            "transforms": ["linear"],
            "mean": [0.0],
            "std": [1.0],
            "window_rows": 2**40,
        },
    ],
)
def test_front_end_sizes_from_a_bundle_are_bounded_before_allocation(config):
    import tracemalloc

    from device_sim.features import frontend_from_dict

    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match="front end"):
            frontend_from_dict(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
