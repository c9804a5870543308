"""The secure broker, proven with real mosquitto processes and plain paho clients over TLS."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ops_fixtures import Collector, close, connect, subscribe

from device_sim.errors import ConfigError
from ops import security
from ops.broker import MosquittoBroker
from tinyfleet.cli import main

# paho 2.x reports 3.1.1 CONNACK codes as MQTT v5 reason codes
NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134


@pytest.fixture
def secure(tmp_path):
    """A TLS mosquitto with a device pair, a subscriber and an operator."""
    lines = security.secure_broker_config(tmp_path)
    users = {
        "dev-a": security.add_credentials(tmp_path, "dev-a", "device", reload=False),
        "dev-b": security.add_credentials(tmp_path, "dev-b", "device", reload=False),
        "dash": security.add_credentials(tmp_path, "dash", "subscriber", reload=False),
        "ops": security.add_credentials(tmp_path, "ops", "operator", reload=False),
    }
    broker = MosquittoBroker(tmp_path, extra_config=lines).start()
    yield broker, tmp_path, users
    broker.close()


def _login(broker, state_dir, users, name, collector=None):
    client, rc = connect(
        broker.port,
        username=name,
        password=users[name],
        ca_file=state_dir / security.CA_CERT,
        collector=collector,
    )
    assert rc == 0, f"{name} could not connect (CONNACK {rc})"
    return client


def test_password_hashes_agree_with_mosquitto_passwd(tmp_path):
    ours = security.hash_password("correct horse")
    assert security.verify_password("correct horse", ours)
    assert not security.verify_password("wrong horse", ours)
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd (package mosquitto) is not installed")
    password_file = tmp_path / "pw"
    password_file.touch()
    subprocess.run([tool, "-b", str(password_file), "alice", "s3cret"], check=True)
    theirs = password_file.read_text().strip().split(":", 1)[1]
    assert theirs.startswith("$7$")
    assert security.verify_password("s3cret", theirs)
    assert not security.verify_password("s3cret!", theirs)


def test_anonymous_and_wrong_password_are_refused(secure):
    broker, state_dir, users = secure
    ca = state_dir / security.CA_CERT
    client, rc = connect(broker.port, ca_file=ca)
    assert rc == NOT_AUTHORIZED
    client, rc = connect(broker.port, username="dev-a", password="guess", ca_file=ca)
    assert rc in (BAD_CREDENTIALS, NOT_AUTHORIZED)
    client, rc = connect(broker.port, username="dev-a", password=users["dev-a"])  # no TLS
    assert rc != 0


def test_device_over_tls_publishes_and_subscriber_receives_but_not_spoofed_topics(secure):
    broker, state_dir, users = secure
    seen = Collector()
    dash = _login(broker, state_dir, users, "dash", seen)
    assert [code.value for code in subscribe(dash, "tinyfleet/#")] == [1]
    dev_a = _login(broker, state_dir, users, "dev-a")
    # mosquitto acknowledges a denied QoS 1 publish (3.1.1 cannot say no) but never delivers it
    dev_a.publish("tinyfleet/dev-b/kws/prediction", b"spoofed", qos=1).wait_for_publish(5)
    dev_a.publish("tinyfleet/dev-a/kws/prediction", b"genuine", qos=1).wait_for_publish(5)
    assert seen.wait_for(lambda m: any(t == "tinyfleet/dev-a/kws/prediction" for t, _, _ in m))
    time.sleep(0.3)  # anything the broker would forward has arrived by now
    assert seen.topics() == ["tinyfleet/dev-a/kws/prediction"]
    close(dash, dev_a)


def test_subscriber_cannot_publish(secure):
    broker, state_dir, users = secure
    seen = Collector()
    ops = _login(broker, state_dir, users, "ops", seen)
    subscribe(ops, "tinyfleet/#")
    subscribe(ops, "homeassistant/#")
    dash = _login(broker, state_dir, users, "dash")
    for topic in ("tinyfleet/dev-a/kws/prediction", "tinyfleet/dash/status", "homeassistant/x"):
        dash.publish(topic, b"from a subscriber", qos=1).wait_for_publish(5)
    ops.publish("tinyfleet/dev-a/rollout/probe", b"operator may", qos=1).wait_for_publish(5)
    assert seen.wait_for(lambda m: len(m) >= 1)
    time.sleep(0.3)
    assert seen.topics() == ["tinyfleet/dev-a/rollout/probe"]
    close(ops, dash)


def test_client_trusting_another_ca_cannot_connect(secure, tmp_path_factory):
    broker, state_dir, users = secure
    other_ca, _ = security.make_ca("someone else's CA")
    other = tmp_path_factory.mktemp("other") / "ca.crt"
    other.write_bytes(security._pem_cert(other_ca))
    client, rc = connect(broker.port, username="dev-a", password=users["dev-a"], ca_file=other)
    assert rc == -1  # the TLS handshake fails: the server certificate is not trusted


def test_users_added_or_removed_take_effect_on_reload_without_restart(secure):
    broker, state_dir, users = secure
    pid_before = broker.pid
    password = security.add_credentials(state_dir, "dev-new", "device")  # sends SIGHUP
    assert security.broker_pids(state_dir) == [pid_before]
    ca = state_dir / security.CA_CERT
    deadline = time.monotonic() + 5
    rc = None
    while time.monotonic() < deadline and rc != 0:
        client, rc = connect(broker.port, username="dev-new", password=password, ca_file=ca)
        time.sleep(0.1)
    assert rc == 0
    assert broker.pid == pid_before and broker.is_running()
    assert security.remove_credentials(state_dir, "dev-new")
    deadline = time.monotonic() + 5
    while client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.is_connected()  # the reload disconnects a removed user at once
    close(client)
    client, rc = connect(broker.port, username="dev-new", password=password, ca_file=ca)
    assert rc != 0


def test_names_that_could_escape_their_topic_subtree_are_rejected(tmp_path):
    for bad in ("dev/a", "dev+", "#", "dev a", "", "x:y", "%u"):
        with pytest.raises(ConfigError, match="not allowed"):
            security.add_credentials(tmp_path, bad, "device", reload=False)
    with pytest.raises(ConfigError, match="role"):
        security.add_credentials(tmp_path, "dev-a", "admin", reload=False)


def test_config_is_reused_so_clients_keep_trusting_the_same_ca(tmp_path):
    security.secure_broker_config(tmp_path)
    first = (tmp_path / security.CA_CERT).read_bytes()
    security.secure_broker_config(tmp_path)
    assert (tmp_path / security.CA_CERT).read_bytes() == first
    assert (tmp_path / security.CA_KEY).stat().st_mode & 0o077 == 0


def test_mqtt_v5_client_sees_refusal_reason(secure):
    broker, state_dir, _ = secure
    client, rc = connect(broker.port, ca_file=state_dir / security.CA_CERT, protocol=mqtt.MQTTv5)
    assert rc in (BAD_CREDENTIALS, NOT_AUTHORIZED)


def test_credentials_cli_adds_lists_and_removes_users(tmp_path, capsys):
    state = str(tmp_path / "broker")
    assert main(["credentials", "add", "dev-7", "--state-dir", state, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    users = security.load_users(tmp_path / "broker")
    assert users["dev-7"]["role"] == "device"
    assert security.verify_password(added["password"], users["dev-7"]["hash"])
    assert Path(added["ca_file"]).is_file()  # clients can be configured before the broker runs
    assert main(["credentials", "add", "dash", "--role", "subscriber", "--state-dir", state]) == 0
    capsys.readouterr()
    assert main(["credentials", "list", "--state-dir", state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "users": {"dash": "subscriber", "dev-7": "device"}
    }
    assert main(["credentials", "remove", "dev-7", "--state-dir", state]) == 0
    assert main(["credentials", "remove", "dev-7", "--state-dir", state]) == 2
    assert "no user 'dev-7'" in capsys.readouterr().err
    assert "user dev-7" not in (tmp_path / "broker" / security.ACL_FILE).read_text()
