"""The fleet view: a real page served by a real mosquitto, loaded in headless Chromium."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from optimize_fixtures import devtools_page, png_is_not_blank

from ops.broker import MosquittoBroker, mosquitto_binary

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto")

ROW = 'document.querySelector(\'tr[data-device="press-7"][data-task="vibration"]\')'


def _prediction(seq: int, score: float, alarm: bool, label: str = "") -> bytes:
    return json.dumps(
        {
            "schema": 1,
            "device": "press-7",
            "task": "vibration",
            "model": {"name": "vibration-ae" + label, "version": "20261123.1"},
            "ts": "2026-11-23T12:00:00Z",
            "ts_ms": 0,
            "seq": seq,
            "valid": True,
            "anomaly_score": score,
            "threshold": 4.2,
            "anomaly": score > 4.2,
            "alarm": alarm,
        }
    ).encode()


@pytest.fixture
def publisher():
    """A fleet broker plus a connected paho client publishing to it."""
    with MosquittoBroker() as broker:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-device")
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            yield broker, client
        finally:
            client.loop_stop()
            client.disconnect()


def test_fleet_view_page_shows_live_predictions_and_alarm_events(publisher, tmp_path):
    from ops.fleet_view import FleetView

    broker, client = publisher
    client.publish("tinyfleet/press-7/status", b"online", qos=1, retain=True).wait_for_publish()
    stop = threading.Event()

    def device_loop() -> None:  # a device publishing one window every 100 ms
        seq = 0
        while not stop.is_set():
            client.publish("tinyfleet/press-7/vibration/prediction", _prediction(seq, 7.5, True))
            seq += 1
            time.sleep(0.1)

    thread = threading.Thread(target=device_loop, daemon=True)
    thread.start()
    try:
        with FleetView(broker.host, broker.port) as view, devtools_page(view.url) as page:
            assert page.wait_for(f"{ROW} !== null", timeout=30), page.evaluate(
                "document.body.innerText"
            )
            row = page.evaluate(f"{ROW}.innerText")
            assert "online" in row and "score 7.500 / threshold 4.200" in row and "ALARM" in row
            assert page.evaluate(f"{ROW}.classList.contains('alarm')")
            event = {
                "schema": 1,
                "device": "press-7",
                "task": "vibration",
                "model": {},
                "ts": "2026-11-23T12:00:01Z",
                "ts_ms": 1,
                "seq": 12,
                "event": {"type": "vibration_alarm", "state": "raised", "anomaly_score": 7.5},
            }
            client.publish("tinyfleet/press-7/vibration/event", json.dumps(event), qos=1)
            assert page.wait_for("document.querySelectorAll('#events li.alarm').length > 0")
            assert "vibration alarm raised" in page.evaluate(
                "document.getElementById('events').innerText"
            )
            health = {"schema": 1, "device": "press-7", "task": "vibration", "ts_ms": 2,
                      "status": "drift", "reasons": ["anomaly_score distribution moved: PSI 3.1"],
                      "checks": {"psi": 3.1}}  # fmt: skip
            client.publish("tinyfleet/press-7/vibration/health", json.dumps(health), qos=1)
            assert page.wait_for(
                "document.getElementById('events').innerText.includes('health: drift')"
            ), page.evaluate("document.getElementById('events').innerText")
            screenshot = tmp_path / "fleet_view.png"
            screenshot.write_bytes(page.screenshot())
            print(f"fleet view screenshot: {screenshot}")
            assert png_is_not_blank(screenshot.read_bytes())[0]
    finally:
        stop.set()
        thread.join(timeout=5)


def test_fleet_view_writes_device_text_as_text_not_markup(publisher):
    from ops.fleet_view import FleetView

    broker, client = publisher
    hostile = '<img src=x onerror="document.body.dataset.owned=1">'
    payload = json.loads(_prediction(0, 1.0, False, label=hostile))
    with FleetView(broker.host, broker.port) as view, devtools_page(view.url) as page:
        assert page.wait_for("document.getElementById('connection').textContent === 'connected'")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not page.evaluate(f"{ROW} !== null"):
            client.publish("tinyfleet/press-7/vibration/prediction", json.dumps(payload))
            time.sleep(0.2)
        assert hostile in page.evaluate(f"{ROW}.innerText")  # shown literally
        assert page.evaluate("document.querySelectorAll('#device-rows img').length") == 0
        assert page.evaluate("document.body.dataset.owned") is None


def test_fleet_snapshot_file_holds_the_last_prediction_escaped(tmp_path):
    from ops.fleet_view import FleetState, write_fleet_html

    state = FleetState()
    state.update("tinyfleet/press-7/status", b"online")
    state.update("tinyfleet/press-7/vibration/prediction", _prediction(3, 7.5, True, "<b>"))
    state.update("tinyfleet/press-7/vibration/prediction", b"not json")  # ignored, not fatal
    state.update("elsewhere/topic", b"{}")
    state.update(
        "tinyfleet/press-7/vibration/health",
        json.dumps({"status": "drift", "reasons": ["PSI 3.1"]}).encode(),
    )
    page = write_fleet_html(tmp_path / "fleet.html", state).read_text()
    assert "drift" in page and "PSI 3.1" in page
    assert "score 7.500 / threshold 4.200" in page and "ALARM" in page
    assert "vibration-ae&lt;b&gt;" in page and "vibration-ae<b>" not in page
    assert state.messages == 4


def test_fleet_view_survives_messages_of_any_json_shape(publisher):
    """Issue #20 row 6: one retained hostile message must not freeze the page for every device."""
    from ops.fleet_view import FleetView

    broker, client = publisher
    hostile = {
        "tinyfleet/evil/x/model": {"name": {"toString": 0}, "version": {"valueOf": 1}},
        "tinyfleet/evil/y/prediction": {"valid": True, "label": {"toString": 0}, "seq": {}},
        "tinyfleet/evil/z/prediction": None,
        "tinyfleet/evil/w/event": {"event": {"type": "keyword", "label": {"toString": 0}}},
        "tinyfleet/evil/aq/prediction": {"estimates": {"CO": None, "NO2": {"value": {}}}},
    }
    for topic, body in hostile.items():
        client.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish()
    client.publish("tinyfleet/evil/v/prediction", b"[1, 2]", qos=1, retain=True).wait_for_publish()
    with FleetView(broker.host, broker.port) as view, devtools_page(view.url) as page:
        assert page.wait_for("document.getElementById('connection').textContent === 'connected'")
        deadline = time.monotonic() + 20
        seq = 0
        while time.monotonic() < deadline and not page.evaluate(f"{ROW} !== null"):
            client.publish("tinyfleet/press-7/vibration/prediction", _prediction(seq, 7.5, True))
            seq += 1
            time.sleep(0.2)
        assert "score 7.500" in page.evaluate(f"{ROW}.innerText")  # the good device still shows
        assert page.evaluate("document.querySelectorAll('tr[data-device=\"evil\"]').length") >= 1
        before = page.evaluate("document.getElementById('message-count').textContent")
        client.publish("tinyfleet/press-7/vibration/prediction", _prediction(seq, 1.0, False))
        assert page.wait_for(
            f"document.getElementById('message-count').textContent !== '{before}' && "
            f"{ROW}.innerText.includes('score 1.000')"
        )
