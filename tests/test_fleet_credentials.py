"""A simulated fleet on the secure broker, deployed as it would be: one password per device.

Real mosquitto over TLS with the generated ACL; ``tinyfleet simulate --credentials FILE`` in a
subprocess; a subscriber account collects every prediction.
"""

from __future__ import annotations

import json

import pytest

from device_sim.mqtt.client import Credentials
from ops import security
from ops.broker import MosquittoBroker
from ops.subscriber import Subscriber
from tests.fleet_fixtures import Collector, expected_keys, run_cli, tiny_vibration_bundle, wait_for
from tinyfleet.cli import main

DEVICES = 50


@pytest.fixture(scope="module")
def bundle():
    return tiny_vibration_bundle()


def test_fifty_devices_log_in_with_their_own_passwords_from_a_credentials_file(
    tmp_path, bundle, capsys
):
    state = tmp_path / "broker"
    passwords = tmp_path / "fleet.passwords"
    lines = security.secure_broker_config(state)
    for index in range(DEVICES - 1):  # what a provisioning loop over `credentials add` does
        name = f"sec-{index:03d}"
        security.save_password(
            passwords, name, security.add_credentials(state, name, "device", reload=False)
        )
    dash = security.add_credentials(state, "dash", "subscriber", reload=False)
    with MosquittoBroker(state, extra_config=lines) as broker:
        # the last one through the CLI, as an operator would (the running broker is reloaded)
        last = f"sec-{DEVICES - 1:03d}"
        assert main(
            ["credentials", "add", last, "--state-dir", str(state), "--passwords-file",
             str(passwords)]
        ) == 0  # fmt: skip
        capsys.readouterr()
        assert passwords.stat().st_mode & 0o777 == 0o600
        assert len(security.load_passwords(passwords)) == DEVICES
        url = f"mqtts://127.0.0.1:{broker.port}"
        ca = state / security.CA_CERT
        collector = Collector()
        subscriber = Subscriber(
            url, credentials=Credentials("dash", dash, ca), on_prediction=collector
        )
        subscriber.start().wait_connected()
        run = [
            "simulate", "--devices", str(DEVICES), "--device-prefix", "sec",
            "--bundles", str(bundle.directory), "--broker", url, "--ca", str(ca),
            "--credentials", str(passwords), "--rate", "2", "--max-windows", "4",
            "--qos", "1", "--state-dir", str(tmp_path / "devices"), "--json",
        ]  # fmt: skip
        done = run_cli(*run, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        expected = expected_keys(tmp_path / "devices")
        assert wait_for(lambda: set(collector.keys) >= expected, 30)
        subscriber.close()
        # one device more than the file knows: refused before anything connects, with the fix
        more = run_cli(*[a if a != str(DEVICES) else str(DEVICES + 1) for a in run], timeout=120)
    assert report["published"]["undelivered"] == 0
    assert len(expected) == DEVICES * 4 == report["published"]["predictions"]
    assert {device for device, _, _ in collector.keys} == {f"sec-{i:03d}" for i in range(DEVICES)}
    assert set(collector.keys) == expected
    assert more.returncode == 2
    assert f"sec-{DEVICES:03d} has no password" in more.stderr
    assert "credentials add" in more.stderr
