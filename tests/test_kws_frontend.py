"""The KWS front end against librosa, an independent implementation of the same maths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from device_sim.errors import BundleError, DataError
from device_sim.features import frontend_from_dict
from device_sim.features.audio import LogMelConfig, MfccConfig, with_normalization
from device_sim.sources.wav_io import read_wav

librosa = pytest.importorskip("librosa")

# A Speech Commands-style folder; override with $TINYFLEET_SPEECH_COMMANDS.
DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))
# Our front end takes each 30 ms frame from its start and zero-pads it to 512 FFT points; librosa
# centres a 480-point window inside the 512-point frame. Prepending (512 - 480) / 2 = 16 zeros makes
# both window exactly the same samples, so any difference is arithmetic (float32 vs float64).
LIBROSA_PAD = 16
# Tolerance in natural-log units: 1e-3 is a 0.1 % error in mel energy, far below int8 input
# resolution (the quantization step of the normalised features is ~0.03).
TOLERANCE = 1e-3


def _speech_clip() -> np.ndarray:
    if DEV.is_dir():
        return read_wav(sorted((DEV / "yes").glob("*.wav"))[0])
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(16000)).astype("f4")


def _librosa_log_mel(clip: np.ndarray, config: LogMelConfig) -> np.ndarray:
    spectrum = np.abs(
        librosa.stft(
            np.pad(clip.astype(np.float64), (LIBROSA_PAD, 0)),
            n_fft=config.fft_length,
            hop_length=config.hop_samples,
            win_length=config.frame_samples,
            window="hann",
            center=False,
        )
    )
    mel = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.fft_length,
        n_mels=config.n_mels,
        fmin=config.fmin_hz,
        fmax=config.fmax_hz,
        htk=True,
        norm=None,
    )
    return np.log(mel @ spectrum + config.log_floor)  # (n_mels, frames)


def test_log_mel_matches_librosa_on_real_speech():
    config = LogMelConfig()
    clip = _speech_clip()
    ours = config.build()(clip)
    reference = _librosa_log_mel(clip, config).T
    assert ours.shape == (49, 40, 1)
    assert np.max(np.abs(ours[..., 0] - reference)) < TOLERANCE


def test_mfcc_matches_librosa_dct_of_the_same_log_mel():
    config = MfccConfig()
    clip = _speech_clip()
    ours = config.build()(clip)
    log_mel = _librosa_log_mel(clip, LogMelConfig())
    reference = librosa.feature.mfcc(S=log_mel, n_mfcc=10, dct_type=2, norm="ortho").T
    assert ours.shape == (49, 10, 1)
    assert np.max(np.abs(ours[..., 0] - reference)) < TOLERANCE * 10  # c0 sums 40 bands


def test_batch_equals_single_window_and_config_round_trips_through_a_bundle_dict():
    config = MfccConfig(n_mfcc=13)
    rng = np.random.default_rng(1)
    clips = (0.1 * rng.standard_normal((3, 16000))).astype(np.float32)
    rebuilt = frontend_from_dict(config.to_dict())
    assert rebuilt.feature_shape == (49, 13, 1)
    batch = config.build().batch(clips)
    for clip, features in zip(clips, batch, strict=True):
        np.testing.assert_allclose(rebuilt(clip), features, rtol=1e-5, atol=1e-5)


def test_normalisation_makes_every_coefficient_unit_scale():
    config = MfccConfig()
    rng = np.random.default_rng(2)
    raw = config.build().batch((0.2 * rng.standard_normal((20, 16000))).astype(np.float32))
    normalised_config = with_normalization(config, raw)
    features = normalised_config.build().normalize(raw)
    assert np.allclose(features.mean(axis=(0, 1, 3)), 0.0, atol=1e-3)
    assert np.allclose(features.std(axis=(0, 1, 3)), 1.0, atol=1e-2)
    restored = frontend_from_dict(normalised_config.to_dict())
    np.testing.assert_allclose(
        restored(rng.standard_normal(16000).astype(np.float32) * 0.2).shape, (49, 10, 1)
    )


def test_constants_for_the_c_port_have_the_documented_shapes():
    frontend = MfccConfig().build()
    constants = frontend.constants()
    assert constants["window"].shape == (480,)
    assert constants["mel_matrix"].shape == (257, 40)
    assert constants["dct_matrix"].shape == (40, 10)
    assert np.all(constants["mel_matrix"].sum(axis=0) > 0), "every mel band must see a bin"


def test_wrong_window_length_and_bad_configs_raise_clear_errors():
    frontend = LogMelConfig().build()
    with pytest.raises(DataError, match="16000"):
        frontend(np.zeros(8000, dtype=np.float32))
    with pytest.raises(BundleError, match="fmax_hz"):
        LogMelConfig(fmax_hz=9000.0)
    with pytest.raises(BundleError, match="n_mfcc"):
        MfccConfig(n_mfcc=50)
