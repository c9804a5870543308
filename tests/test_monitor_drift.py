"""`tinyfleet monitor` against real devices: a simulated accelerometer whose gain changes drifts the
anomaly-score distribution away from the bundle's reference, and a health event says so."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from contextlib import redirect_stdout

import numpy as np
import paho.mqtt.client as mqtt

from device_sim.bundle import load_bundle, update_bundle
from device_sim.fleet import FleetOptions, run_fleet
from device_sim.sources.vibration import SimSource
from device_sim.sources.vibration_sim import FaultSchedule
from ops.broker import MosquittoBroker
from ops.monitor import MONITORING_KEY, psi, score_reference
from ops.subscriber import Subscriber
from tests.fleet_fixtures import start_cli, tiny_vibration_bundle, wait_for

HEALTHY = FaultSchedule()  # kind "none": the machine never develops a fault


class GainSource:
    """A healthy simulated machine seen through an accelerometer whose gain is ``gain``."""

    def __init__(self, bundle, seed: int, gain: float) -> None:
        config = bundle.feature_config
        self.inner = SimSource(
            float(config["sample_rate"]), int(config["axes"]), seed=seed, fault=HEALTHY
        )
        self.sample_rate = self.inner.sample_rate
        self.gain = gain

    def read(self, n: int) -> np.ndarray:
        return self.inner.read(n) * self.gain

    def close(self) -> None:
        self.inner.close()


def _scores(broker, bundle, tmp_path, gains, windows: int) -> dict[str, list[float]]:
    """Run one device per gain; the anomaly scores each published."""
    scores: dict[str, list[float]] = {}

    def collect(prediction, payload, received_ms) -> None:
        if prediction.valid:
            scores.setdefault(prediction.device, []).append(prediction.fields["anomaly_score"])

    subscriber = Subscriber(broker.url, on_prediction=collect).start().wait_connected()
    run_fleet(
        FleetOptions(
            broker.url,
            [bundle],
            devices=len(gains),
            device_prefix=f"run{len(scores)}-{time.monotonic_ns() % 1000}",
            rate_hz=200,
            max_windows=windows,
            prediction_qos=1,
            state_dir=tmp_path / f"state-{time.monotonic_ns()}",
        ),
        source_factory=lambda b, index, seed: GainSource(b, 11 + index, gains[index]),
    )
    time.sleep(1.0)
    subscriber.close()
    return scores


def test_a_sensor_gain_change_raises_a_drift_health_event(tmp_path):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_vibration_bundle().directory, bundle_dir)
    bundle = load_bundle(bundle_dir)
    with MosquittoBroker(tmp_path / "broker") as broker:
        # calibration time: the healthy machines' scores become the bundle's reference
        reference_scores = _scores(broker, bundle, tmp_path, [1.0, 1.0], 300)
        reference = score_reference(np.concatenate(list(reference_scores.values())))
        bundle = update_bundle(bundle, extra={MONITORING_KEY: reference})

        health: dict[str, dict] = {}
        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="health-watcher")
        watcher.on_message = lambda c, u, m: health.__setitem__(m.topic, json.loads(m.payload))
        watcher.connect(broker.host, broker.port)
        watcher.subscribe("tinyfleet/+/+/health", qos=1)
        watcher.loop_start()
        output = io.StringIO()
        argv = ["monitor", "--broker", broker.url, "--bundle", str(bundle_dir)]
        argv += ["--window", "120", "--duration", "25", "--json"]

        def monitor() -> None:
            from tinyfleet.cli import main

            with redirect_stdout(output):
                main(argv)

        thread = threading.Thread(target=monitor, daemon=True)
        thread.start()
        # the same check inside a subscriber: `tinyfleet subscribe --monitor BUNDLE`
        subscribe = start_cli(
            "subscribe", "--broker", broker.url, "--monitor", str(bundle_dir), "--json",
            "--duration", "25",
        )  # fmt: skip
        time.sleep(3.0)
        # deployed: device 0 as calibrated, device 1's accelerometer now reads 3x
        deployed = _scores(broker, bundle, tmp_path, [1.0, 3.0], 300)
        drifted_device = sorted(deployed)[1]
        healthy_device = sorted(deployed)[0]
        topic = f"tinyfleet/{drifted_device}/vibration/health"
        assert wait_for(lambda: topic in health, 20), (health, output.getvalue())
        watcher.loop_stop()
        watcher.disconnect()
        thread.join(60)
        subscribed, errors = subscribe.communicate(timeout=60)
    assert subscribe.returncode == 0, errors[-2000:]
    seen = [json.loads(line) for line in subscribed.splitlines() if line.startswith('{"health"')]
    assert [(h["health"]["device"], h["health"]["status"]) for h in seen] == [
        (drifted_device, "drift")
    ], seen
    event = health[topic]
    assert event["status"] == "drift" and "PSI" in event["reasons"][0], event
    assert event["checks"]["psi"] > 0.25 and event["checks"]["ks_p"] < 1e-3
    assert event["checks"]["median"] > event["checks"]["reference_median"]
    assert f"tinyfleet/{healthy_device}/vibration/health" not in health, health
    # what the numbers were: the healthy device stays near its reference
    healthy_psi = psi(reference["decile_edges"], np.asarray(deployed[healthy_device][-120:]))
    assert healthy_psi < 0.25, healthy_psi
    summary = json.loads(output.getvalue().splitlines()[-1])["summary"]
    assert summary["status"][f"{drifted_device}/vibration"] == "drift"
    assert load_bundle(bundle_dir).extra[MONITORING_KEY]["windows"] == reference["windows"]
