"""Recordings rendered once per process and replayed, read-only, by many simulated devices.

Why: in a big simulated fleet the sensor *simulators* cost more than the devices they feed — the
machine simulator renders a vibration hop (2,048 frames × 3 axes) in ~1–3 ms, more than the
device's front end and invoke of it — and a buffer per device costs memory. With
``simulate --shared-recordings K`` each task's own simulator renders K recordings of
:data:`RECORDING_WINDOWS` windows once per process; device ``i`` replays recording ``i % K`` in
a loop from its own seeded starting point. The devices still run every window through their own
front end, model and task logic; only the raw samples repeat (K recordings instead of one per
device), which a backend load test or a site demonstration does not notice.
"""

from __future__ import annotations

import threading

import numpy as np

from device_sim.bundle import Bundle
from device_sim.features import frontend_from_dict
from device_sim.sources import open_source

RECORDING_WINDOWS = 240  # hops per recording: KWS 60 s, vibration ~77 s, air quality 10 days


class LoopedRecording:
    """Replays ``rows`` (read-only, shared) in a loop from ``start``; never ends."""

    def __init__(self, rows: np.ndarray, sample_rate: float, start: int = 0) -> None:
        self.rows, self.sample_rate = rows, sample_rate
        self.position = start % len(rows)

    def read(self, n: int) -> np.ndarray:
        stop = self.position + n
        if stop <= len(self.rows):
            chunk = self.rows[self.position : stop]
        else:  # wrap around (a copy; rare)
            index = np.arange(self.position, stop) % len(self.rows)
            chunk = self.rows[index]
        self.position = stop % len(self.rows)
        return chunk

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
        self._recordings: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"count": self.count, "seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["count"], state["seed"])

    def _recording(self, bundle: Bundle, which: int) -> tuple[np.ndarray, float]:
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
                rows.flags.writeable = False
                self._recordings[key] = (rows, float(source.sample_rate))
                source.close()
            return self._recordings[key]

    def __call__(self, bundle: Bundle, index: int, seed: int) -> LoopedRecording:
        rows, sample_rate = self._recording(bundle, index % self.count)
        start = int(np.random.default_rng(seed).integers(len(rows)))
        return LoopedRecording(rows, sample_rate, start)


def _hop_rows(bundle: Bundle, window_samples: int) -> int:
    """Raw rows between two windows of ``bundle`` (as the task runtime advances)."""
    from device_sim.tasks import runtime_for

    return int(getattr(runtime_for(bundle), "hop_samples", 0) or window_samples)
