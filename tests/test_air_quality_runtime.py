"""Air-quality front end and device task runtime: features, bands, invalid windows, events."""

from __future__ import annotations

import numpy as np
import pytest
from air_quality_fixtures import model_less_bundle

from device_sim.errors import BundleError
from device_sim.features import frontend_from_dict
from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.tasks import runtime_for
from device_sim.tasks.air_quality import DEFAULT_BANDS, band_indices, decode_outputs

INPUTS = ("PT08.S1(CO)", "T", "hour", "weekday")
TRANSFORMS = ("log", "linear", "hour", "weekend")


def fitted(window_rows: int = 3) -> AirQualityWindowConfig:
    rng = np.random.default_rng(0)
    rows = np.stack(
        [rng.uniform(800, 1600, 200), rng.uniform(0, 30, 200), np.arange(200) % 24, np.zeros(200)],
        axis=1,
    )
    return AirQualityWindowConfig.fitted(INPUTS, TRANSFORMS, rows, window_rows=window_rows)


def test_statistics_come_from_the_rows_given_and_survive_the_bundle_round_trip():
    training = np.array([[1000.0, 10.0, 0, 0], [4000.0, 30.0, 6, 5], [np.nan, 20.0, 12, 6]])
    config = AirQualityWindowConfig.fitted(INPUTS, TRANSFORMS, training, window_rows=2)
    assert config.mean[0] == pytest.approx(np.mean(np.log([1000.0, 4000.0])))  # NaN ignored
    assert config.std[1] == pytest.approx(np.std([10.0, 30.0, 20.0]))
    assert config.mean[2:] == (0.0, 0.0) and config.std[2:] == (1.0, 1.0)
    rebuilt = frontend_from_dict(config.to_dict())
    assert rebuilt.feature_shape == (2 * 5,)  # hour gives sin and cos
    window = training[:2]
    features = rebuilt(window)
    assert features[0] == pytest.approx((np.log(1000.0) - config.mean[0]) / config.std[0])
    assert features[2:4] == pytest.approx([0.0, 1.0])  # midnight: sin 0, cos 1
    assert features[4] == 0.0 and features[9] == 1.0  # Monday; Saturday is weekend


def test_batch_and_single_window_give_identical_features():
    frontend = fitted().build()
    windows = np.random.default_rng(1).uniform(1, 1000, (5, 3, 4))
    windows[..., 3] = np.floor(windows[..., 3] % 7)
    batch = frontend.batch(windows)
    for window, row in zip(windows, batch, strict=True):
        np.testing.assert_array_equal(frontend(window), row)


def test_a_missing_input_makes_the_features_nan_not_a_guess():
    frontend = fitted().build()
    window = np.array([[1000.0, 10.0, 3, 1], [np.nan, 11.0, 4, 1], [1100.0, 12.0, 5, 1]])
    features = frontend(window)
    assert np.isnan(features).sum() == 1


def test_config_with_mismatched_statistics_is_refused():
    with pytest.raises(BundleError, match="mean has 1 entries for 2 inputs"):
        AirQualityWindowConfig(("T", "RH"), ("linear", "linear"), (0.0,), (1.0, 1.0))


def test_band_is_the_worst_banded_pollutant_and_benzene_is_not_banded():
    keys = ["CO", "NO2", "C6H6"]
    values = np.array(
        [
            [0.5, 49.9, 80.0],  # benzene very high in µg/m³ but not banded → very_low
            [0.5, 50.0, 1.0],  # at the NO2 threshold → low
            [8.0, 60.0, 1.0],  # CO 8 mg/m³ → medium, worse than NO2's low
            [0.1, 450.0, 1.0],  # → very_high
            [np.nan, np.nan, 1.0],  # nothing banded is known
        ]
    )
    names = DEFAULT_BANDS["names"]
    indices = band_indices(values, keys)
    assert [names[i] if i >= 0 else None for i in indices] == [
        "very_low",
        "low",
        "medium",
        "very_high",
        None,
    ]


def test_outputs_decode_to_concentrations_never_below_zero(tmp_path):
    bundle = model_less_bundle(tmp_path, fitted())
    values = decode_outputs(np.array([[0.0, 1.0, -6.0]]), bundle.head)[0]
    assert values[0] == pytest.approx(np.exp(0.5) - 0.1)
    assert values[1] == pytest.approx(np.exp(4.5 + 0.4) - 0.1)
    assert values[2] >= 0.0


def test_window_with_missing_input_is_flagged_with_a_reason_and_not_inferred(tmp_path):
    runtime = runtime_for(model_less_bundle(tmp_path, fitted()))
    good = np.array([[1000.0, 10.0, 3, 1], [1050.0, 11.0, 4, 1], [1100.0, 12.0, 5, 1]])
    assert runtime.check_window(good) is None
    bad = good.copy()
    bad[1, 1] = np.nan
    assert runtime.check_window(bad) == "missing T in 1 of 3 hours"
    assert "expected (3, 4)" in runtime.check_window(good[:2])
    result = runtime.process(np.zeros(3), np.full(15, np.nan))
    assert result.fields["valid"] is False and "not finite" in result.fields["reason"]
    assert result.event is None


def test_band_change_event_needs_the_new_band_confirmed(tmp_path):
    bundle = model_less_bundle(tmp_path, fitted(), explain={"in_payload": True, "per_target": {}})
    runtime = runtime_for(bundle)
    features = np.zeros(15)
    log_std = 0.4  # NO2: value = exp(z * 0.4 + 4.5) - 0.1 ≈ 90 µg/m³ at z = 0 (low)
    low, medium = 0.0, (np.log(150.0) - 4.5) / log_std
    sequence = [low, low, medium, low, medium, medium, medium]
    events = []
    for z in sequence:
        result = runtime.process(np.array([-3.0, z, 0.0]), features)
        assert result.fields["valid"] is True
        assert result.fields["estimates"]["NO2"]["unit"] == "µg/m³"
        events.append(result.event)
    assert result.fields["band"] == "medium"
    fired = [i for i, e in enumerate(events) if e]
    assert fired == [5]  # one flicker (index 2) is not a change; two in a row are
    assert events[5]["from"] == "low" and events[5]["to"] == "medium"
    assert "explain" not in result.fields  # an empty explanation is not sent


def test_payload_carries_the_explanation_when_the_bundle_asks(tmp_path):
    top = {"CO": ["PT08.S1(CO)", "T"], "NO2": ["T"], "C6H6": ["PT08.S1(CO)"]}
    bundle = model_less_bundle(tmp_path, fitted(), explain={"in_payload": True, "per_target": top})
    result = runtime_for(bundle).process(np.zeros(3), np.zeros(15))
    assert result.fields["explain"] == top
    quiet = model_less_bundle(tmp_path, fitted(), explain={"in_payload": False, "per_target": top})
    assert "explain" not in runtime_for(quiet).process(np.zeros(3), np.zeros(15)).fields
