"""`tinyfleet monitor` for keyword spotting and air quality: a simulated device driven into drift
sees a health event, its healthy twin does not.

The bundles come through the real quantize stage, which records their monitoring reference (the
int8 model on the held-out set); the devices are real simulated devices over a real mosquitto.

* KWS: a fan next to one device's microphone (white noise at -26 dBFS over the same audio): the
  label priors and the top-class confidence both move.
* Air quality: one node's MOX sensors read 1.5x their response (ageing/poisoning) over the same
  held-out hours the reference was computed on: every target's estimate distribution moves.
"""

from __future__ import annotations

import json
import time

import numpy as np

from device_sim.monitoring import MONITORING_KEY
from device_sim.sources.kws import ArraySource
from ops.broker import MosquittoBroker
from tests.fleet_fixtures import wait_for
from tests.monitor_fixtures import (
    KWS_RATE,
    StationReplay,
    copy_bundle,
    health_watch,
    kws_audio,
    run_devices,
    start_monitor,
    tiny_air_quality_bundle,
    tiny_kws_bundle,
)

FAN_RMS = 0.05  # white noise, -26 dBFS


def _deploy(tmp_path, bundle, sources, windows):
    """Run ``sources`` as devices under `tinyfleet monitor`; (health by topic, device ids, summary)."""
    with MosquittoBroker(tmp_path / "broker") as broker, health_watch(broker) as health:
        thread, output = start_monitor(broker, bundle.directory, window=None, duration=12)
        time.sleep(3.0)  # connected and subscribed before the devices publish
        deployed = run_devices(broker, bundle, tmp_path, sources, windows)
        devices = sorted(deployed)
        topic = f"tinyfleet/{devices[1]}/{bundle.task}/health"
        assert wait_for(lambda: topic in health, 10), (health, output.getvalue())
        thread.join(30)
    summary = json.loads(output.getvalue().splitlines()[-1])["summary"]
    return health, devices, summary


def test_kws_a_fan_by_the_microphone_raises_a_drift_health_event(tmp_path):
    bundle = copy_bundle(tiny_kws_bundle(), tmp_path / "kws")
    reference = bundle.extra[MONITORING_KEY]  # written by the quantize stage
    assert set(reference["statistics"]) == {"label", "confidence"}
    assert reference["statistics"]["label"]["kind"] == "categorical"
    audio, _ = kws_audio(7, 62)
    fan = audio + np.random.default_rng(3).standard_normal(len(audio)).astype(np.float32) * FAN_RMS
    sources = [lambda b: ArraySource(audio, KWS_RATE), lambda b: ArraySource(fan, KWS_RATE)]
    health, (healthy, noisy), summary = _deploy(tmp_path, bundle, sources, 240)
    event = health[f"tinyfleet/{noisy}/kws/health"]
    assert event["status"] == "drift", event
    label = event["checks"]["statistics"]["label"]
    confidence = event["checks"]["statistics"]["confidence"]
    assert label["test"] == "chi2" and label["psi"] > 0.25 and label["p"] < 1e-3, label
    assert confidence["psi"] > 0.25, confidence  # fewer windows at the saturated top score
    assert any(reason.startswith("label distribution moved") for reason in event["reasons"])
    assert f"tinyfleet/{healthy}/kws/health" not in health, json.dumps(
        health[f"tinyfleet/{healthy}/kws/health"]
    )
    assert summary["status"] == {f"{healthy}/kws": "ok", f"{noisy}/kws": "drift"}


def test_air_quality_an_aged_sensor_raises_a_drift_health_event(tmp_path):
    bundle = copy_bundle(tiny_air_quality_bundle(), tmp_path / "aq")
    reference = bundle.extra[MONITORING_KEY]  # written by the quantize stage
    assert {"CO_estimate", "CO_residual"} <= set(reference["statistics"])
    assert 0 < reference["invalid_rate"] < 0.2
    sources = [lambda b: StationReplay(b), lambda b: StationReplay(b, gain=1.5)]
    health, (healthy, aged), summary = _deploy(tmp_path, bundle, sources, 24 * 16)
    event = health[f"tinyfleet/{aged}/air_quality/health"]
    assert event["status"] == "drift", event
    statistics = event["checks"]["statistics"]
    assert event["checks"]["windows"] == 24 * 14  # the task's window: two weeks of hours
    assert "CO_residual" not in statistics  # no prediction carries a reference value
    co = statistics["CO_estimate"]
    assert co["psi"] > 0.25 and co["p"] < 1e-3 and co["median"] > co["reference_median"], co
    assert f"tinyfleet/{healthy}/air_quality/health" not in health, health
    assert summary["status"] == {f"{healthy}/air_quality": "ok", f"{aged}/air_quality": "drift"}
