"""The vibration simulator's physics and reproducibility (numpy/scipy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from device_sim.features.vibration import VibrationFeatureConfig
from device_sim.sources.vibration_sim import (
    BearingGeometry,
    ConstantSchedule,
    FaultSchedule,
    MachineSimulator,
    SimulatorConfig,
    simulate_recording,
)

RATE = 6400.0
SHAFT_HZ = 29.95  # 1797 rpm, the CWRU 0 hp speed


def envelope_spectrum(x: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Classic bearing diagnosis: band-pass around the housing resonance, Hilbert envelope, FFT."""
    sos = signal.butter(4, [1800, 3100], btype="bandpass", fs=rate, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    envelope -= envelope.mean()
    spectrum = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope))))
    return np.fft.rfftfreq(len(envelope), 1 / rate), spectrum


def peak_near(freqs: np.ndarray, spectrum: np.ndarray, hz: float, tolerance: float = 1.5) -> float:
    return float(spectrum[np.abs(freqs - hz) <= tolerance].max())


def faulty_signal(kind: str, severity: float = 0.5, seconds: float = 8.0) -> np.ndarray:
    simulator = MachineSimulator(
        SimulatorConfig(sample_rate=RATE),
        seed=3,
        fault=FaultSchedule(kind, 0.0, severity, severity),
        schedule=ConstantSchedule(SHAFT_HZ),
    )
    return simulator.render(int(seconds * RATE))[:, 1]  # y: the load direction


def test_6205_defect_orders_match_the_cwru_bearing_table():
    orders = BearingGeometry().fault_orders()
    # CWRU lists 3.5848 (BPFO), 5.4152 (BPFI), 4.7135 (2×BSF), 0.39828 (FTF) × shaft speed
    assert orders["bpfo"] == pytest.approx(3.5848, abs=2e-3)
    assert orders["bpfi"] == pytest.approx(5.4152, abs=2e-3)
    assert 2 * orders["bsf"] == pytest.approx(4.7135, abs=5e-3)
    assert orders["ftf"] == pytest.approx(0.39828, abs=1e-3)


@pytest.mark.parametrize(("kind", "order"), [("outer_race", "bpfo"), ("inner_race", "bpfi")])
def test_bearing_defect_shows_its_frequency_in_the_envelope_spectrum(kind, order):
    defect_hz = BearingGeometry().fault_orders()[order] * SHAFT_HZ
    freqs, faulty = envelope_spectrum(faulty_signal(kind), RATE)
    _, healthy = envelope_spectrum(faulty_signal("none"), RATE)
    in_band = (freqs > 5) & (freqs < 400)
    assert peak_near(freqs, faulty, defect_hz) > 8 * np.median(faulty[in_band])
    assert peak_near(freqs, faulty, defect_hz) > 10 * peak_near(freqs, healthy, defect_hz)


def test_inner_race_impacts_are_modulated_by_shaft_rotation():
    """Sidebands at BPFI ± 1× appear because the defect passes through the load zone each turn."""
    bpfi = BearingGeometry().fault_orders()["bpfi"] * SHAFT_HZ
    freqs, inner = envelope_spectrum(faulty_signal("inner_race"), RATE)
    _, outer = envelope_spectrum(faulty_signal("outer_race"), RATE)
    floor = np.median(inner[(freqs > 5) & (freqs < 400)])
    assert peak_near(freqs, inner, bpfi - SHAFT_HZ) > 4 * floor
    assert peak_near(freqs, inner, SHAFT_HZ) > 3 * peak_near(freqs, outer, SHAFT_HZ)


def test_ball_fault_repeats_at_twice_the_ball_spin_frequency():
    two_bsf = 2 * BearingGeometry().fault_orders()["bsf"] * SHAFT_HZ
    freqs, spectrum = envelope_spectrum(faulty_signal("ball"), RATE)
    assert peak_near(freqs, spectrum, two_bsf) > 6 * np.median(
        spectrum[(freqs > 5) & (freqs < 400)]
    )


def test_imbalance_raises_the_one_times_running_speed_line_only():
    def line(x: np.ndarray, hz: float) -> float:
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return peak_near(np.fft.rfftfreq(len(x), 1 / RATE), spectrum, hz, 1.0)

    healthy, faulty = faulty_signal("none"), faulty_signal("imbalance", severity=1.0)
    assert line(faulty, SHAFT_HZ) / line(healthy, SHAFT_HZ) == pytest.approx(2.5, rel=0.05)
    assert line(faulty, 3 * SHAFT_HZ) / line(healthy, 3 * SHAFT_HZ) == pytest.approx(1, rel=0.05)


def test_same_seed_reproduces_a_recording_and_another_seed_does_not():
    first = simulate_recording(2.0, kind="inner_race", severity=0.2, seed=11)
    again = simulate_recording(2.0, kind="inner_race", severity=0.2, seed=11)
    other = simulate_recording(2.0, kind="inner_race", severity=0.2, seed=12)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_chunked_rendering_is_continuous():
    """A device reads in hops; the signal must not depend on the chunking (phases, filter state)."""
    fault = FaultSchedule("outer_race", 0.5, 0.3, 0.3)
    whole = MachineSimulator(seed=5, fault=fault).render(6400)
    chunked = MachineSimulator(seed=5, fault=fault)
    pieces = np.concatenate([chunked.render(n) for n in (1000, 2048, 3352)])
    assert pieces.shape == whole.shape == (6400, 3)
    assert np.allclose(pieces, whole, atol=1e-5)


def test_speed_changes_move_level_but_not_the_relative_band_features_much():
    """Normal speed changes: RMS changes a lot, the speed-normalised shape features much less."""
    frontend = VibrationFeatureConfig().build()
    features = {}
    rms = {}
    for speed in (18.0, 45.0):
        x = MachineSimulator(seed=2, schedule=ConstantSchedule(speed)).render(4096)
        rms[speed] = float(np.sqrt(np.mean(x**2)))
        features[speed] = frontend(x)
    assert rms[45.0] / rms[18.0] > 3  # the level follows speed²
    cfg = VibrationFeatureConfig()
    hf = [axis * cfg.features_per_axis + cfg.n_bands + 3 for axis in range(cfg.axes)]
    assert np.allclose(features[18.0][hf], features[45.0][hf], atol=0.15)  # log10 hf kurtosis
