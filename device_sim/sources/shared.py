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

import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import DataError
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

    reads_from_memory = True  # a read costs microseconds: no need to read ahead of the window

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
    With ``render_in_child`` (the default) the recordings are rendered by a short-lived child
    process (``python -m device_sim.sources.shared``) and loaded from its files, so the
    simulators' imports (``scipy.signal`` and with it ``scipy.stats``: ~55 MB of RSS) and their
    temporaries never enter the fleet's process; the samples are the same.
    """

    def __init__(self, count: int, seed: int = 0, render_in_child: bool = True) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.count, self.seed, self.render_in_child = count, seed, render_in_child
        self._recordings: dict[tuple[str, int], Recording] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"count": self.count, "seed": self.seed, "render_in_child": self.render_in_child}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["count"], state["seed"], state.get("render_in_child", True))

    @staticmethod
    def _key(bundle: Bundle) -> str:
        return bundle.model_sha256 + bundle.task

    def prepare(self, bundles: list[Bundle]) -> None:
        """Render every recording of ``bundles`` not rendered yet (all in one child process)."""
        with self._lock:
            unique = {self._key(b): b for b in bundles}
            missing = [b for key, b in unique.items() if (key, 0) not in self._recordings]
            if not missing:
                return
            if self.render_in_child:
                rendered = _render_in_child(missing, self.count, self.seed)
            else:
                rendered = [
                    [render_recording(b, which, self.seed) for which in range(self.count)]
                    for b in missing
                ]
            for bundle, recordings in zip(missing, rendered, strict=True):
                for which, recording in enumerate(recordings):
                    self._recordings[(self._key(bundle), which)] = recording

    def __call__(self, bundle: Bundle, index: int, seed: int) -> LoopedRecording:
        self.prepare([bundle])
        recording = self._recordings[(self._key(bundle), index % self.count)]
        start = int(np.random.default_rng(seed).integers(len(recording)))
        return LoopedRecording(recording, start)


def render_recording(bundle: Bundle, which: int, seed: int) -> Recording:
    """Recording ``which`` of ``bundle``: its simulator's first ``window + RECORDING_WINDOWS``
    hops, from seed ``seed * 1000 + which``."""
    frontend = frontend_from_dict(bundle.feature_config)
    hop = _hop_rows(bundle, frontend.window_samples)
    source = open_source(bundle, "sim", seed=seed * 1_000 + which)
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
    sample_rate = float(source.sample_rate)
    source.close()
    return Recording.of(rows, sample_rate)


def _render_in_child(bundles: list[Bundle], count: int, seed: int) -> list[list[Recording]]:
    with tempfile.TemporaryDirectory(prefix="tinyfleet-recordings-") as folder:
        command = [sys.executable, "-m", __name__, folder, str(count), str(seed)]
        command += [str(b.directory) for b in bundles]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise DataError(
                f"rendering the shared recordings failed ({done.stderr.strip()[-2000:]}); run "
                "without --shared-recordings to see the simulator's error in this process"
            )
        return [
            [_load(Path(folder) / f"{b_index}-{which}.npz") for which in range(count)]
            for b_index in range(len(bundles))
        ]


def _save(path: Path, recording: Recording) -> None:
    scale = recording.scale if recording.scale is not None else np.zeros(0)
    np.savez(
        path,
        codes=recording.codes,
        scale=scale,
        dtype=np.array(str(recording.dtype)),
        sample_rate=np.array(recording.sample_rate),
    )


def _load(path: Path) -> Recording:
    with np.load(path) as data:
        codes = data["codes"]
        scale = data["scale"] if data["scale"].size else None
        recording = Recording(
            codes, scale, np.dtype(str(data["dtype"])), float(data["sample_rate"])
        )
    codes.flags.writeable = False
    return recording


def _main(argv: list[str]) -> int:
    """``python -m device_sim.sources.shared FOLDER COUNT SEED BUNDLE_DIR...``: render each
    bundle's COUNT recordings into FOLDER/<bundle index>-<which>.npz."""
    from device_sim.bundle import load_bundle

    folder, count, seed, *bundle_dirs = argv
    for b_index, bundle_dir in enumerate(bundle_dirs):
        bundle = load_bundle(bundle_dir)
        for which in range(int(count)):
            recording = render_recording(bundle, which, int(seed))
            _save(Path(folder) / f"{b_index}-{which}.npz", recording)
    return 0


def _hop_rows(bundle: Bundle, window_samples: int) -> int:
    """Raw rows between two windows of ``bundle`` (as the task runtime advances)."""
    from device_sim.tasks import runtime_for

    return int(getattr(runtime_for(bundle), "hop_samples", 0) or window_samples)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
