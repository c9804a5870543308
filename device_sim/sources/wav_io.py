"""Read and write WAV files as mono float32 at the rate a model needs (numpy/scipy only).

Recordings come from anywhere (phones at 44.1/48 kHz, stereo, 24-bit, float); the KWS model needs
16 kHz mono. Reading downmixes channels by averaging and resamples with a polyphase filter
(``scipy.signal.resample_poly``), which is exact for rational rate ratios and has no edge ringing
worth mentioning for speech. Anything that is not a RIFF/WAVE file is refused with a
:class:`DataError` that says how to convert it.
"""

from __future__ import annotations

import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

from device_sim.errors import DataError

_CONVERT_HINT = "convert it first, e.g. `sox INPUT -r 16000 -c 1 -b 16 OUTPUT.wav`"


def to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float PCM → float32 in [-1, 1] (8-bit WAV is unsigned, centred on 128)."""
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        return (samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)).astype(np.float32)
    return samples.astype(np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the first axis from ``from_rate`` to ``to_rate`` Hz (polyphase FIR)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    if from_rate <= 0 or to_rate <= 0:
        raise DataError(f"cannot resample from {from_rate} Hz to {to_rate} Hz")
    divisor = gcd(int(from_rate), int(to_rate))
    up, down = int(to_rate) // divisor, int(from_rate) // divisor
    return scipy.signal.resample_poly(samples, up, down, axis=0).astype(np.float32)


def downmix(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) → (n,) by averaging the channels."""
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def read_wav_raw(path: str | Path) -> tuple[int, np.ndarray]:
    """Return (sample rate in Hz, float32 samples shaped (n,) or (n, channels))."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    with path.open("rb") as handle:
        header = handle.read(12)
    if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
        raise DataError(f"{path} is not a WAV file (no RIFF/WAVE header): {_CONVERT_HINT}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(path, mmap=False)
    except (ValueError, EOFError, OSError, struct.error) as exc:
        raise DataError(f"{path} is not a readable WAV file ({exc}): {_CONVERT_HINT}") from exc
    if data.size == 0:
        raise DataError(f"{path} holds no audio samples")
    return int(rate), to_float(data)


def read_wav(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """A WAV file as mono float32 in [-1, 1] at ``sample_rate`` Hz, whatever its rate/channels."""
    rate, data = read_wav_raw(path)
    return resample(downmix(data), rate, sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write mono (or (n, channels)) float samples in [-1, 1] as 16-bit PCM."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767)
    scipy.io.wavfile.write(path, int(sample_rate), pcm.astype(np.int16))
    return path
