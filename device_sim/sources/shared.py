"""Recordings rendered once per process and replayed, read-only, by many simulated devices.

Why: in a big simulated fleet the sensor *simulators* cost more than the devices they feed — the
machine simulator renders a vibration hop (2,048 frames × 3 axes) in ~1–3 ms, more than the
device's front end and invoke of it — and a buffer per device costs memory. With
``simulate --shared-recordings K`` each task's own simulator renders K recordings of
:data:`RECORDING_WINDOWS` windows once per process; device ``i`` replays recording ``i % K`` in
a loop from its own seeded starting point. The devices still run every window through their own
front end, model and task logic; only the raw samples repeat (K recordings instead of one per
device), which a backend load test or a site demonstration does not notice.

Memory: a recording is kept as 16-bit codes with a power-of-two scale per channel (as a 16-bit
ADC delivers them: ~4 bytes less per sample than float32, half of an 8-recording KWS +
vibration fleet's fixed ~75 MB); :meth:`LoopedRecording.read` returns ``codes × scale`` in the
source's float type, exact since a 16-bit code times a power of two is a float. Recordings under
:data:`QUANTIZE_MIN_BYTES` (a gas sensor's hourly rows) or holding non-finite values stay floats.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from device_sim.bundle import Bundle
from device_sim.features import frontend_from_dict
from device_sim.sources import open_source

RECORDING_WINDOWS = 240  # hops per recording: KWS 60 s, vibration ~77 s, air quality 10 days
QUANTIZE_MIN_BYTES = 1 << 20  # smaller recordings are kept as they were rendered


@dataclass(frozen=True)
class Recording:
    """Rendered rows, read-only: ``codes`` (int16) × ``scale`` (one power of two per channel) in
    ``dtype``, or the rows themselves in ``codes`` when ``scale`` is None."""

    codes: np.ndarray
    scale: np.ndarray | None
    dtype: np.dtype
    sample_rate: float

    @classmethod
    def of(cls, rows: np.ndarray, sample_rate: float) -> Recording:
        if rows.nbytes < QUANTIZE_MIN_BYTES or not np.isfinite(rows).all():
            rows.flags.writeable = False
            return cls(rows, None, rows.dtype, sample_rate)
        peak = np.abs(rows).max(axis=0) if rows.ndim > 1 else np.abs(rows).max()
        # the smallest power of two that maps the channel's peak within ±32767
        scale = np.exp2(np.ceil(np.log2(np.maximum(peak, 1e-30) / 32767))).astype(rows.dtype)
        codes = np.empty(rows.shape, dtype=np.int16)
        np.rint(rows / scale, out=codes, casting="unsafe")
        codes.flags.writeable = False
        return cls(codes, scale, rows.dtype, sample_rate)

    def __len__(self) -> int:
        return len(self.codes)

    def rows(self, part: np.ndarray) -> np.ndarray:
        """``part`` of :attr:`codes` as samples."""
        if self.scale is None:
            return part
        return np.multiply(part, self.scale, dtype=self.dtype)


class LoopedRecording:
    """Replays a :class:`Recording` (read-only, shared) in a loop from ``start``; never ends."""

    def __init__(self, recording: Recording, start: int = 0) -> None:
        self.recording, self.sample_rate = recording, recording.sample_rate
        self.position = start % len(recording)

    def read(self, n: int) -> np.ndarray:
        codes = self.recording.codes
        stop = self.position + n
        if stop <= len(codes):
            chunk = codes[self.position : stop]
        else:  # wrap around (a copy; rare)
            index = np.arange(self.position, stop) % len(codes)
            chunk = codes[index]
        self.position = stop % len(codes)
        return self.recording.rows(chunk)

    def close(self) -> None:
        pass


class SharedRecordings:
    """A source factory for :class:`~device_sim.fleet.Fleet`: ``count`` recordings per bundle.

    Picklable (``simulate --processes N`` sends it to each worker, which renders its own copies).
    """

    def __init__(self, count: int, seed: int = 0) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.count, self.seed = count, seed
        self._recordings: dict[tuple[str, int], Recording] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"count": self.count, "seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["count"], state["seed"])

    def _recording(self, bundle: Bundle, which: int) -> Recording:
        key = (bundle.model_sha256 + bundle.task, which)
        with self._lock:
            if key not in self._recordings:
                frontend = frontend_from_dict(bundle.feature_config)
                hop = _hop_rows(bundle, frontend.window_samples)
                source = open_source(bundle, "sim", seed=self.seed * 1_000 + which)
                # in pieces: one big render holds several times the recording in temporaries,
                # and the allocator keeps that peak for the life of the process
                total = frontend.window_samples + RECORDING_WINDOWS * hop
                pieces = [np.asarray(source.read(min(16 * hop, total)))]
                rows = np.empty((total, *pieces[0].shape[1:]), dtype=pieces[0].dtype)
                filled = 0
                while True:
                    piece = pieces.pop()
                    rows[filled : filled + len(piece)] = piece
                    filled += len(piece)
                    if filled >= total:
                        break
                    pieces.append(np.asarray(source.read(min(16 * hop, total - filled))))
                self._recordings[key] = Recording.of(rows, float(source.sample_rate))
                del rows
                source.close()
            return self._recordings[key]

    def __call__(self, bundle: Bundle, index: int, seed: int) -> LoopedRecording:
        recording = self._recording(bundle, index % self.count)
        start = int(np.random.default_rng(seed).integers(len(recording)))
        return LoopedRecording(recording, start)


def _hop_rows(bundle: Bundle, window_samples: int) -> int:
    """Raw rows between two windows of ``bundle`` (as the task runtime advances)."""
    from device_sim.tasks import runtime_for

    return int(getattr(runtime_for(bundle), "hop_samples", 0) or window_samples)
