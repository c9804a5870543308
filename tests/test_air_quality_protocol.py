"""The air-quality dev protocol and model parts that need no TensorFlow: month folds, baselines on
identical rows, the float curve prior, the decoder and the field-calibration fit. Real UCI rows where
it matters (tests/data), the simulator where months are needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.errors import BundleError
from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.sources.air_quality_sim import simulate
from device_sim.sources.uci_air_csv import load_csv
from device_sim.tasks.air_quality import CurvePrior, OutputDecoder
from device_sim.tasks.air_quality.calibration import fit_correction
from training.air_quality import (
    INPUT_TRANSFORMS,
    choose_inputs,
    current_row_inputs,
    fit_curve_prior,
    target_head,
    windowed,
)
from training.air_quality.baselines import baseline_features, fit_baselines
from training.air_quality.protocol import month_folds, month_of_rows

REAL_ROWS = Path(__file__).parent / "data" / "air_quality_uci_3weeks.csv"
TARGETS = ["CO(GT)", "NO2(GT)", "C6H6(GT)"]


def test_month_folds_train_only_on_earlier_months_and_score_exactly_one_month():
    table = simulate(24 * 150, seed=1)
    months = month_of_rows(table)
    folds = month_folds(table, min_train_months=3)
    assert len(folds) >= 1
    for fold in folds:
        assert set(months[fold.train_end : fold.test_end]) == {fold.label}
        assert all(m < fold.label for m in months[: fold.train_end])
    assert [f.train_end for f in folds[1:]] == [f.test_end for f in folds[:-1]]


def test_lagged_baseline_features_are_the_earlier_hours_and_missing_lags_are_missing():
    table = load_csv(REAL_ROWS)
    hour = baseline_features(table, "hour")
    lagged = baseline_features(table, "lagged")
    n = hour.shape[1]
    assert lagged.shape[1] == 3 * n + 1
    np.testing.assert_array_equal(lagged[5:, n : 2 * n], hour[4:-1])  # t-1 h
    np.testing.assert_array_equal(lagged[5:, 2 * n : 3 * n], hour[3:-2])  # t-2 h
    assert np.isnan(lagged[:2, 2 * n : -1]).all()
    assert lagged[:, -1].tolist() == table.column("hour").tolist()


def test_baselines_never_see_the_evaluation_references():
    table = load_csv(REAL_ROWS)
    train_rows, eval_rows = np.arange(2, 336), np.arange(336, len(table))
    first = fit_baselines(table, ["CO(GT)"], train_rows, eval_rows)
    table.values[eval_rows, table.columns.index("CO(GT)")] = 99.0  # poison the scored month
    second = fit_baselines(table, ["CO(GT)"], train_rows, eval_rows)
    assert set(first.predictions) == {
        f"{m}_{f}" for m in ("linear", "gbm", "hist_gbm") for f in ("hour", "lagged")
    }
    for name, pred in first.predictions.items():
        assert pred.shape == (len(eval_rows), 1)
        np.testing.assert_array_equal(pred, second.predictions[name])


def _real_windows():
    table = load_csv(REAL_ROWS)
    inputs, transforms = choose_inputs(table)
    split = 336  # two weeks train, the third evaluates
    config = AirQualityWindowConfig.fitted(
        inputs, transforms, table.matrix(inputs)[:split], window_rows=3, clip_linear=True
    )
    data = windowed(table, config, TARGETS)
    train = data["end_row"] < split
    return table, config, data, train, split


def test_benzene_curve_prior_picks_the_nmhc_sensor_and_beats_gradient_boosting_on_real_rows():
    table, config, data, train, split = _real_windows()
    head = {"targets": target_head(TARGETS, data["y"][train])}
    prior = fit_curve_prior(data["x"][train], data["y"][train], head, config, n_knots=6)
    rebuilt = CurvePrior.from_dict(prior.to_dict())
    assert rebuilt == prior
    _, names = current_row_inputs(config)
    used = [names[i] for i, s in enumerate(prior.slope[2]) if s != 0.0]
    assert used == ["PT08.S2(NMHC)"]  # benzene: the NMHC sensor's curve
    test = ~train
    decoded = OutputDecoder.from_head({**head, "prior": prior.to_dict()})(
        np.zeros((test.sum(), 3)), data["x"][test]
    )
    truth = data["y"][test, 2]
    present = np.isfinite(truth)
    prior_mae = np.mean(np.abs(decoded[present, 2] - truth[present]))
    gbm = fit_baselines(table, ["C6H6(GT)"], data["end_row"][train], data["end_row"][test])
    gbm_mae = np.nanmean(np.abs(gbm.predictions["gbm_hour"][present, 0] - truth[present]))
    assert prior_mae < 0.8 * gbm_mae, (prior_mae, gbm_mae)
    # only the used inputs' constants count for the device: 1 input × 6 knots here
    assert prior.n_values < 3 * (2 + 3 * 7) + 3 * 6


def test_decoder_needs_the_features_of_a_prior_and_applies_the_correction():
    _, config, data, train, _ = _real_windows()
    head = {"targets": target_head(TARGETS, data["y"][train])}
    head["prior"] = fit_curve_prior(data["x"][train], data["y"][train], head, config, 3).to_dict()
    outputs = np.full((4, 3), 0.5)
    with pytest.raises(BundleError, match="needs the features"):
        OutputDecoder.from_head(head)(outputs)
    plain = OutputDecoder.from_head(head)
    z = plain.z(outputs, data["x"][:4])
    corrected = OutputDecoder.from_head(
        {**head, "correction": {"gain": [1.0, 2.0, 1.0], "bias": [0.3, 0.0, 0.0]}}
    )
    values = corrected(outputs, data["x"][:4])
    np.testing.assert_allclose(values[:, 0], plain.values(z + [0.3, 0, 0])[:, 0])
    np.testing.assert_allclose(values[:, 1], plain.values(z * [1, 2, 1])[:, 1])
    np.testing.assert_allclose(plain.encode(plain.values(z)[:, 2], 2), z[:, 2], atol=1e-9)
    assert set(INPUT_TRANSFORMS) >= set(config.inputs)


def test_field_correction_recovers_drift_with_many_hours_and_stays_cautious_with_few():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 1.0, 2000)
    drifted = 1.25 * z - 0.4 + rng.normal(0.0, 0.05, z.size)
    gain, bias = fit_correction(z, drifted, prior_hours=24)
    assert gain == pytest.approx(1.25, abs=0.02) and bias == pytest.approx(-0.4, abs=0.02)
    few_gain, few_bias = fit_correction(z[:6], drifted[:6], prior_hours=24)
    assert abs(few_bias) < 0.4 and abs(few_gain - 1.0) < 0.25  # shrunk towards no change
    assert fit_correction(z, z) == pytest.approx((1.0, 0.0), abs=1e-9)


def test_recency_weights_halve_every_half_life_and_leave_teacher_windows_at_one():
    from training.air_quality import recency_weights

    table = simulate(24 * 40, seed=0)
    end_rows = np.arange(0, 24 * 40, 24)  # one window a day
    weights = recency_weights(table, end_rows, 10.0, len(end_rows) + 5)
    assert weights is not None and len(weights) == len(end_rows) + 5
    real = weights[: len(end_rows)]
    assert real.mean() == pytest.approx(1.0, rel=1e-5)
    assert real[-1] / real[-11] == pytest.approx(2.0, rel=1e-3)  # 10 days newer: twice the weight
    np.testing.assert_array_equal(weights[len(end_rows) :], 1.0)
    assert recency_weights(table, end_rows, 0.0, len(end_rows)) is None


def test_dropped_inputs_are_left_out_of_the_model_inputs():
    table = load_csv(REAL_ROWS)
    inputs, transforms = choose_inputs(table, ("T", "AH"))
    assert "T" not in inputs and "AH" not in inputs and "RH" in inputs
    assert len(inputs) == len(transforms)
