"""`tinyfleet monitor` against real vibration devices: a simulated accelerometer whose gain changes,
and a machine that now runs at a speed it never ran at in training, each drift the anomaly-score
distribution away from the bundle's reference, and a health event says so.

The fixture bundle predates the monitoring reference: `tinyfleet monitor` computes it from the
`evaluation.npz` beside the bundle (healthy windows) and records it, as it does for older bundles.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np

from device_sim.bundle import load_bundle
from device_sim.features import frontend_from_dict
from device_sim.monitoring import MONITORING_KEY
from device_sim.sources.vibration import SimSource
from device_sim.sources.vibration_sim import (
    ConstantSchedule,
    FaultSchedule,
    MachineSimulator,
    SimulatorConfig,
)
from ops.broker import MosquittoBroker
from ops.monitor import psi
from tests.fleet_fixtures import start_cli, tiny_vibration_bundle, wait_for
from tests.monitor_fixtures import health_watch, run_devices, start_monitor

HEALTHY = FaultSchedule()  # kind "none": the machine never develops a fault
NEW_SPEED_HZ = 60.0  # 3600 rpm; the simulator's machines (and the training data) run at 15-50 Hz


class Machine:
    """A healthy simulated machine through an accelerometer of gain ``gain``; at ``speed_hz``
    (constant) instead of the usual schedule of speeds when given."""

    def __init__(self, bundle, seed: int, gain: float = 1.0, speed_hz: float | None = None):
        config = bundle.feature_config
        self.sample_rate = float(config["sample_rate"])
        if speed_hz is None:
            self.inner = SimSource(self.sample_rate, int(config["axes"]), seed=seed, fault=HEALTHY)
        else:
            simulator = SimulatorConfig(sample_rate=self.sample_rate, axes=int(config["axes"]))
            self.inner = MachineSimulator(
                simulator, seed=seed, fault=HEALTHY, schedule=ConstantSchedule(speed_hz)
            )
        self.gain = gain

    def read(self, n: int) -> np.ndarray:
        chunk = self.inner.read(n) if hasattr(self.inner, "read") else self.inner.render(n)
        return chunk * self.gain

    def close(self) -> None:
        pass


def bundle_with_evaluation(tmp_path):
    """The tiny vibration bundle, with held-out healthy windows (two machines) beside it."""
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_vibration_bundle().directory, bundle_dir)
    bundle = load_bundle(bundle_dir)
    frontend = frontend_from_dict(bundle.feature_config)
    size, hop = frontend.window_samples, int(bundle.feature_config["hop_samples"])
    x = []
    for seed in (11, 12):
        samples = Machine(bundle, seed).read(size + hop * 299)
        x += [frontend(samples[i * hop : i * hop + size]) for i in range(300)]
    x = np.asarray(x, dtype=np.float32)
    np.savez_compressed(bundle_dir / "evaluation.npz", x=x, class_index=np.zeros(len(x), int))
    assert MONITORING_KEY not in (bundle.extra or {})
    return bundle_dir, bundle


def scores(predictions) -> np.ndarray:
    return np.asarray([p.fields["anomaly_score"] for p in predictions if p.valid])


def test_a_sensor_gain_change_raises_a_drift_health_event(tmp_path):
    bundle_dir, bundle = bundle_with_evaluation(tmp_path)
    with MosquittoBroker(tmp_path / "broker") as broker, health_watch(broker) as health:
        thread, output = start_monitor(broker, bundle_dir, window=120, duration=15)
        # the same check inside a subscriber: `tinyfleet subscribe --monitor BUNDLE`
        subscribe = start_cli(
            "subscribe", "--broker", broker.url, "--monitor", str(bundle_dir), "--json",
            "--duration", "15",
        )  # fmt: skip
        time.sleep(3.0)
        # deployed: device 0 as calibrated, device 1's accelerometer now reads 3x
        sources = [lambda b: Machine(b, 11), lambda b: Machine(b, 12, gain=3.0)]
        deployed = run_devices(broker, bundle, tmp_path, sources, 300)
        healthy_device, drifted_device = sorted(deployed)
        topic = f"tinyfleet/{drifted_device}/vibration/health"
        assert wait_for(lambda: topic in health, 20), (health, output.getvalue())
        thread.join(60)
        subscribed, errors = subscribe.communicate(timeout=60)
    assert subscribe.returncode == 0, errors[-2000:]
    seen = [json.loads(line) for line in subscribed.splitlines() if line.startswith('{"health"')]
    assert [(h["health"]["device"], h["health"]["status"]) for h in seen] == [
        (drifted_device, "drift")
    ], seen
    event = health[topic]
    checks = event["checks"]["statistics"]["anomaly_score"]
    assert event["status"] == "drift" and "PSI" in event["reasons"][0], event
    assert checks["psi"] > 0.25 and checks["p"] < 1e-3
    assert checks["median"] > checks["reference_median"]
    assert f"tinyfleet/{healthy_device}/vibration/health" not in health, health
    # the monitor computed the reference from evaluation.npz and the bundle keeps it
    reference = load_bundle(bundle_dir).extra[MONITORING_KEY]
    assert reference["statistics"]["anomaly_score"]["count"] == 600
    # what the numbers were: the healthy device stays near its reference
    healthy_psi = psi(
        reference["statistics"]["anomaly_score"], scores(deployed[healthy_device])[-120:]
    )
    assert healthy_psi < 0.25, healthy_psi
    summary = json.loads(output.getvalue().splitlines()[-1])["summary"]
    assert summary["status"][f"{drifted_device}/vibration"] == "drift"


def test_a_new_machine_speed_raises_a_drift_health_event(tmp_path):
    bundle_dir, bundle = bundle_with_evaluation(tmp_path)
    with MosquittoBroker(tmp_path / "broker") as broker, health_watch(broker) as health:
        thread, output = start_monitor(broker, bundle_dir, window=120, duration=15)
        time.sleep(3.0)
        # deployed: device 0 as calibrated; device 1's machine now runs at 3600 rpm
        sources = [lambda b: Machine(b, 11), lambda b: Machine(b, 12, speed_hz=NEW_SPEED_HZ)]
        deployed = run_devices(broker, bundle, tmp_path, sources, 300)
        healthy_device, drifted_device = sorted(deployed)
        topic = f"tinyfleet/{drifted_device}/vibration/health"
        assert wait_for(lambda: topic in health, 20), (health, output.getvalue())
        thread.join(60)
    event = health[topic]
    checks = event["checks"]["statistics"]["anomaly_score"]
    assert event["status"] == "drift" and "anomaly_score" in event["reasons"][0], event
    assert checks["psi"] > 0.25 and checks["p"] < 1e-3
    assert checks["median"] > checks["reference_median"]
    assert f"tinyfleet/{healthy_device}/vibration/health" not in health, health
