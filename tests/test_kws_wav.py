"""Reading recordings for KWS: resampling, downmixing and refusing what is not a WAV."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io.wavfile

from device_sim.errors import DataError
from device_sim.sources.wav_io import read_wav


def _tone(rate: int, hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_a_44k1_stereo_recording_is_read_as_16k_mono_with_the_same_pitch(tmp_path):
    left, right = _tone(44100, 1000.0), _tone(44100, 1000.0) * 0.5
    pcm = (np.stack([left, right], axis=1) * 32767).astype(np.int16)
    path = tmp_path / "phone.wav"
    scipy.io.wavfile.write(path, 44100, pcm)
    samples = read_wav(path, 16000)
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert abs(len(samples) - 16000) <= 1
    assert abs(_peak_hz(samples, 16000) - 1000.0) < 2.0
    # the downmix averages channels: amplitude (0.5 + 0.25) / 2
    assert np.max(np.abs(samples[1000:-1000])) == pytest.approx(0.375, abs=0.01)


def test_float32_and_24_bit_wavs_at_48k_are_resampled(tmp_path):
    path = tmp_path / "float.wav"
    scipy.io.wavfile.write(path, 48000, _tone(48000, 440.0).astype(np.float32))
    samples = read_wav(path, 16000)
    assert len(samples) == 16000
    assert abs(_peak_hz(samples, 16000) - 440.0) < 2.0
    # 24-bit PCM, hand-written (scipy writes int32 as 32-bit)
    pcm24 = (_tone(16000, 300.0) * (2**23 - 1)).astype(np.int32)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in pcm24[:1600])
    header = (
        b"RIFF" + (36 + len(raw)).to_bytes(4, "little") + b"WAVEfmt "
        + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + (16000).to_bytes(4, "little") + (48000).to_bytes(4, "little")
        + (3).to_bytes(2, "little") + (24).to_bytes(2, "little")
        + b"data" + len(raw).to_bytes(4, "little")
    )  # fmt: skip
    (tmp_path / "pcm24.wav").write_bytes(header + raw)
    samples24 = read_wav(tmp_path / "pcm24.wav", 16000)
    np.testing.assert_allclose(samples24, _tone(16000, 300.0)[:1600], atol=1e-4)


def test_not_a_wav_is_a_data_error_that_says_how_to_convert(tmp_path):
    mp3 = tmp_path / "clip.mp3"
    mp3.write_bytes(b"ID3\x03\x00\x00\x00" + bytes(200))
    with pytest.raises(DataError, match="not a WAV file.*sox"):
        read_wav(mp3)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(DataError, match="sox"):
        read_wav(truncated)
    with pytest.raises(DataError, match="does not exist"):
        read_wav(tmp_path / "missing.wav")
