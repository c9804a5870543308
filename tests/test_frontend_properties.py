"""Property-based: every front end, on arbitrary input, either returns finite features of its
promised shape (finite input within the sensor's range) or raises a TinyfleetError — never crashes
with another exception, never returns NaN/Inf for finite input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from device_sim.errors import TinyfleetError
from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.features.audio import default_config
from device_sim.features.vibration import VibrationFeatureConfig

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _audio():
    return default_config("mfcc").build()


def _vibration():
    return VibrationFeatureConfig().build()


def _air_quality():
    inputs = ("PT08.S1(CO)", "T", "hour", "weekday")
    rows = np.random.default_rng(0).uniform([500, -5, 0, 0], [2000, 40, 23, 6], size=(200, 4))
    return AirQualityWindowConfig.fitted(
        inputs, ("log", "linear", "hour", "weekend"), rows, window_rows=3
    ).build()


FRONT_ENDS = {"audio": _audio, "vibration": _vibration, "air_quality": _air_quality}


def _window_shape(frontend) -> tuple[int, ...]:
    if hasattr(frontend, "inputs"):  # air quality: (rows, inputs)
        return (frontend.window_rows, len(frontend.inputs))
    axes = getattr(frontend.config, "axes", None)
    return (frontend.window_samples, axes) if axes else (frontend.window_samples,)


@pytest.fixture(scope="module", params=sorted(FRONT_ENDS))
def frontend(request):
    return FRONT_ENDS[request.param]()


# Values a real sensor can deliver: audio in [-1, 1], acceleration within ±16 g, gas-sensor
# responses, temperatures, hours and weekdays all inside [0, 4000] after the sign.
finite_values = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@SETTINGS
@given(data=st.data())
def test_finite_input_gives_finite_features_of_the_promised_shape(frontend, data) -> None:
    shape = _window_shape(frontend)
    window = data.draw(arrays(np.float64, shape, elements=finite_values))
    if hasattr(frontend, "inputs"):
        window = np.abs(window) * 1000.0  # non-negative sensor readings, hours, weekdays
    elif getattr(frontend.config, "axes", None):
        window = window * 16.0  # ±16 g
    features = frontend(window)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))
    reference_shape = frontend(np.zeros(shape) + (1.0 if hasattr(frontend, "inputs") else 0.0))
    assert features.shape == reference_shape.shape


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 70), min_size=0, max_size=3).map(tuple),
    fill=st.sampled_from([0.0, np.nan, np.inf, 1e30]),
)
def test_any_shape_or_value_returns_or_raises_a_tinyfleet_error(frontend, shape, fill) -> None:
    window = np.full(shape, fill)
    try:
        features = frontend(window)
    except TinyfleetError as exc:
        assert str(exc)
        return
    assert features.dtype == np.float32
