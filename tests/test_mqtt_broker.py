"""The local broker helper: real mosquitto on a free loopback port, kill/restart, fallback."""

from __future__ import annotations

import socket

import pytest

from device_sim.errors import BrokerError, ConfigError
from device_sim.mqtt.client import (
    MQTT_V5,
    MQTT_V311,
    detect_protocol,
    forget_protocol,
    parse_broker_url,
)
from ops import broker as broker_module
from ops.broker import MosquittoBroker, port_accepts, start_broker


def test_broker_listens_on_loopback_only_and_survives_kill_and_restart(tmp_path):
    with MosquittoBroker(tmp_path, persistence=True) as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert port_accepts("127.0.0.1", broker.port)
        assert f"listener {broker.port} 127.0.0.1" in broker.config_text()
        first_pid = broker.pid
        broker.kill()
        assert not port_accepts("127.0.0.1", broker.port)
        broker.restart()
        assert broker.pid != first_pid
        assert port_accepts("127.0.0.1", broker.port)
        assert detect_protocol(parse_broker_url(broker.url)) == MQTT_V5
    assert (tmp_path / "mosquitto.log").read_text().count("starting") == 2


def test_bad_config_fails_with_the_broker_log_tail(tmp_path):
    broker = MosquittoBroker(tmp_path, extra_config=["no_such_option 1"])
    with pytest.raises(BrokerError, match="no_such_option|Unknown configuration"):
        broker.start(timeout=5)
    assert not broker.is_running()


def test_busy_port_is_reported(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        # something else owns the port: mosquitto exits and we say so instead of hanging
        with pytest.raises(BrokerError, match="port"):
            MosquittoBroker(tmp_path, port=port).start(timeout=3)


def test_without_mosquitto_an_in_process_311_broker_is_used(monkeypatch, caplog):
    monkeypatch.setattr(broker_module, "mosquitto_binary", lambda: None)
    fallback = start_broker()
    try:
        assert "falling back" in caplog.text
        address = parse_broker_url(fallback.url)
        forget_protocol(address)
        assert detect_protocol(address) == MQTT_V311
    finally:
        fallback.stop()
    with pytest.raises(BrokerError, match="persistence"):
        start_broker(persistence=True)


@pytest.mark.parametrize("url", ["http://x:1", "mqtt://", "mqtt://host:notaport"])
def test_bad_broker_urls_say_what_is_expected(url):
    with pytest.raises(ConfigError, match="mqtt://"):
        parse_broker_url(url)
