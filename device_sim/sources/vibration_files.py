"""Vibration recordings from files: CWRU-style MATLAB ``.mat``, CSV, NPY and WAV (numpy/scipy only).

Formats (samples in g, time along the first axis):

* ``.mat``: the samples are the file's only numeric array (e.g. UESTC's ``Data``), or in CWRU
  bearing data style variables such as ``X097_DE_time`` (drive end),
  ``X097_FE_time`` (fan end), ``X097_BA_time`` (base) and ``X097RPM``. The record number varies
  between files, so channels are matched by suffix: the default is ``DE_time``; ``channel`` picks
  another suffix (``FE``, ``FE_time``) or an exact variable name. CWRU files do not store their
  sample rate (12 kHz or 48 kHz): pass ``sample_rate``, unless the file has a scalar ``fs``,
  ``Fs``, ``sample_rate`` or ``SampleFrequency`` variable (any case, underscores ignored).
* ``.csv``: one column per axis, optional header; a column named ``time``/``t``/``time_s``/
  ``timestamp`` (seconds) gives the sample rate and is not used as an axis. ``channel`` selects
  columns by header name (comma-separated).
* ``.npy``: an array ``(n,)`` or ``(n, axes)``.
* ``.wav``: the rate comes from the file; integer PCM is scaled to ±1 (taken as g — scale your data
  if the recorder's full scale is not 1 g); float WAV is taken as g.

:func:`load_recording` returns samples at the file's rate; :func:`resample` brings them to the
model's rate with ``scipy.signal.resample_poly`` (anti-aliased polyphase filtering).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import io as scipy_io
from scipy import signal
from scipy.io import wavfile

from device_sim.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".mat", ".csv", ".npy", ".wav")
TIME_COLUMNS = ("time", "t", "time_s", "timestamp", "seconds")
_RATE_VARIABLES = (
    "fs",
    "sample_rate",
    "sampling_rate",
    "samplefrequency",
    "samplingfrequency",
    "samplerate",
)


@dataclass
class Recording:
    """One recording: ``samples`` ``(n, axes)`` float32 in g at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: float
    origin: str
    label: str = "normal"
    severity: float = float("nan")  # simulator recordings only
    rpm: float | None = None
    # operating condition (speed/load); files sharing one are consecutive pieces of one recording
    condition: str = ""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def load_recording(
    path: str | Path, *, sample_rate: float | None = None, channel: str | None = None
) -> Recording:
    """Read one recording; ``sample_rate`` (Hz) is used when the file does not state one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    readers = {".mat": _read_mat, ".csv": _read_csv, ".npy": _read_npy, ".wav": _read_wav}
    if suffix not in readers:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}"
        )
    try:
        samples, file_rate, rpm = readers[suffix](path, channel)
    except DataError:
        raise
    except (ValueError, OSError, TypeError, KeyError, IndexError) as exc:
        raise DataError(
            f"{path} could not be read as {suffix} ({exc}); check the file is complete and in the "
            "format described in docs/vibration.md"
        ) from exc
    rate = file_rate or sample_rate
    if not rate:
        raise DataError(
            f"{path} does not say its sample rate: pass --sample-rate HZ (CWRU: 12000 for the "
            "12 kHz drive-end files, 48000 for the 48 kHz ones)"
        )
    if file_rate and sample_rate and abs(file_rate - sample_rate) > 1e-6 * file_rate:
        log.warning("%s states %g Hz; ignoring --sample-rate %g", path, file_rate, sample_rate)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    if samples.ndim != 2 or samples.shape[0] < 2 or samples.shape[1] < 1:
        raise DataError(f"{path}: expected samples shaped (n, axes), got {samples.shape}")
    if samples.shape[1] > samples.shape[0]:
        raise DataError(
            f"{path}: {samples.shape[1]} channels but only {samples.shape[0]} samples — the file "
            "looks transposed; store time along the first axis (one row per sample)"
        )
    if not np.all(np.isfinite(samples)):
        raise DataError(f"{path} contains NaN/Inf samples; clean or drop the recording")
    return Recording(samples=samples, sample_rate=float(rate), origin=str(path), rpm=rpm)


def resample(recording: Recording, sample_rate: float) -> Recording:
    """The recording at ``sample_rate`` Hz (polyphase, anti-aliased); unchanged if already there."""
    if abs(recording.sample_rate - sample_rate) < 1e-6 * sample_rate:
        return recording
    ratio = Fraction(sample_rate / recording.sample_rate).limit_denominator(1000)
    if abs(float(ratio) - sample_rate / recording.sample_rate) > 1e-4 * float(ratio):
        raise DataError(
            f"{recording.origin}: cannot resample {recording.sample_rate:g} Hz to "
            f"{sample_rate:g} Hz with a small rational ratio; resample the file first"
        )
    samples = signal.resample_poly(
        recording.samples.astype(np.float64), ratio.numerator, ratio.denominator, axis=0
    )
    return Recording(
        samples=samples.astype(np.float32),
        sample_rate=float(sample_rate),
        origin=recording.origin,
        label=recording.label,
        severity=recording.severity,
        rpm=recording.rpm,
        condition=recording.condition,
    )


def _read_mat(path: Path, channel: str | None) -> tuple[np.ndarray, float | None, float | None]:
    try:
        variables = scipy_io.loadmat(path)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it with "
            "`save(..., '-v7')` or export the channel to CSV/NPY"
        ) from exc
    arrays = {k: v for k, v in variables.items() if not k.startswith("__")}
    name = _mat_signal_name(path, arrays, channel)
    samples = np.asarray(arrays[name], dtype=np.float64).squeeze()
    if samples.ndim == 2 and samples.shape[0] < samples.shape[1]:
        samples = samples.T
    rate = next(
        (
            float(np.asarray(value).squeeze())
            for key, value in arrays.items()
            if key.lower().replace("_", "") in {r.replace("_", "") for r in _RATE_VARIABLES}
            and np.asarray(value).size == 1
        ),
        None,
    )
    rpm_names = [k for k in arrays if k.upper().endswith("RPM")]
    rpm = float(np.asarray(arrays[rpm_names[0]]).squeeze()) if rpm_names else None
    return samples, rate, rpm


def _mat_signal_name(path: Path, arrays: dict, channel: str | None) -> str:
    """The variable holding the samples: ``channel`` (exact name or CWRU suffix such as ``FE``),
    else the CWRU drive end (``*_DE_time``), else the file's only array with more than one
    sample (e.g. UESTC's ``Data``)."""
    if channel and channel in arrays:
        return channel
    wanted = channel or "DE_time"
    suffix = wanted if wanted.endswith("_time") else f"{wanted}_time"
    matches = sorted(k for k in arrays if k.endswith(f"_{suffix}") or k == suffix)
    if len(matches) > 1:
        log.warning("%s: several %s variables %s; using %s", path, suffix, matches, matches[0])
    if matches:
        return matches[0]
    signals = sorted(
        k
        for k, v in arrays.items()
        if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.number) and v.size > 1
    )
    if channel is None and len(signals) == 1:
        return signals[0]
    raise DataError(
        f"{path} has no variable ending in _{suffix}"
        + ("" if channel else " and more than one array")
        + f"; its variables are {sorted(arrays)}: pass --channel with one of them"
    )


def _read_csv(path: Path, channel: str | None) -> tuple[np.ndarray, float | None, None]:
    with path.open(newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        if not sample.strip():
            raise DataError(f"{path} is empty")
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        rows = list(csv.reader(handle, delimiter=delimiter))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    header: list[str] | None = None
    if rows and not _numeric(rows[0]):
        header = [cell.strip() for cell in rows[0]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path} has a header but no samples")
    width = len(rows[0])
    data = np.empty((len(rows), width))
    for line, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"{path} line {line}: {len(row)} columns, expected {width}")
        try:
            data[line - (2 if header else 1)] = [float(cell) for cell in row]
        except ValueError as exc:
            raise DataError(f"{path} line {line}: not a number ({exc})") from exc
    rate = None
    columns = list(range(width))
    if header:
        lower = [name.lower() for name in header]
        time_index = next((i for i, name in enumerate(lower) if name in TIME_COLUMNS), None)
        if time_index is not None:
            steps = np.diff(data[:, time_index])
            if len(steps) == 0 or np.median(steps) <= 0:
                raise DataError(f"{path}: the {header[time_index]!r} column does not increase")
            # mean step over the whole recording: robust to timestamps rounded to a few digits
            rate = (len(steps)) / float(data[-1, time_index] - data[0, time_index])
            columns.remove(time_index)
        if channel:
            names = [name.strip() for name in channel.split(",")]
            missing = [name for name in names if name not in header]
            if missing:
                raise DataError(f"{path} has no column(s) {missing}; its columns are {header}")
            columns = [header.index(name) for name in names]
    elif channel:
        raise DataError(f"{path} has no header, so --channel {channel!r} cannot select a column")
    return data[:, columns], rate, None


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def _read_npy(path: Path, channel: str | None) -> tuple[np.ndarray, None, None]:
    data = np.load(path, allow_pickle=False)
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(f"{path} holds {data.dtype} values, not numbers")
    return data, None, None


def _read_wav(path: Path, channel: str | None) -> tuple[np.ndarray, float, None]:
    rate, data = wavfile.read(path)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        centre = (int(info.max) + int(info.min) + 1) / 2
        data = (data.astype(np.float64) - centre) / ((int(info.max) - int(info.min) + 1) / 2)
    return data, float(rate), None


def list_recordings(folder: Path) -> list[Path]:
    """Recording files directly in ``folder`` (sorted, so runs are reproducible)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
