"""Accelerometer sources for a vibration device: simulator, recording file, or stdin.

All return chunks ``(n, axes)`` float32 in g at the bundle's sample rate:

* ``sim``: an endless :class:`~device_sim.sources.vibration_sim.MachineSimulator` run. The machine
  follows a seeded schedule of speeds/loads (normal) and, so that a demo shows alarms, develops a
  fault: kind ``FAULT_KINDS[seed % 6]``, onset at ``20 + 5 * (seed % 4)`` s, growing from
  incipient (0.2) to severe (1.0) over 60 s. ``machine`` describes it (logged at INFO).
* ``file``: a recording (``.mat``/``.csv``/``.npy``/``.wav``, see
  :mod:`device_sim.sources.vibration_files`), resampled to the bundle's rate. Files that do not
  state a rate are taken to be at the bundle's rate. Ends when the file does.
* ``stdin``: text lines, one sample per line, ``axes`` numbers separated by commas or spaces, in g
  at the bundle's rate (e.g. ``python read_serial.py | tinyfleet device …``). One non-numeric header
  line is skipped; any other malformed line is a :class:`DataError` naming the line.

``realtime=True`` paces ``read`` to the sample rate (a simulated sensor); otherwise it returns as
fast as asked.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import ConfigError, DataError
from device_sim.sources.pacing import Pacer
from device_sim.sources.vibration_files import load_recording, resample
from device_sim.sources.vibration_sim import (
    FAULT_KINDS,
    FaultSchedule,
    MachineSimulator,
    SimulatorConfig,
)

log = logging.getLogger(__name__)

KINDS = ("sim", "file", "stdin")


def default_fault(seed: int) -> FaultSchedule:
    """The fault a simulated machine with this seed develops (see the module docstring)."""
    return FaultSchedule(
        kind=FAULT_KINDS[seed % len(FAULT_KINDS)],
        onset_s=20.0 + 5.0 * (seed % 4),
        start_severity=0.2,
        end_severity=1.0,
        growth_s=60.0,
    )


class SimSource:
    """A simulated machine that keeps running; ``machine`` says what it will do and when."""

    def __init__(
        self,
        sample_rate: float,
        axes: int,
        *,
        seed: int = 0,
        fault: FaultSchedule | None = None,
        realtime: bool = False,
    ) -> None:
        self.sample_rate = float(sample_rate)
        self.fault = default_fault(seed) if fault is None else fault
        config = SimulatorConfig(sample_rate=self.sample_rate, axes=axes)
        self._simulator = MachineSimulator(config, seed=seed, fault=self.fault)
        self._pacer = Pacer(self.sample_rate, realtime)
        self.machine = {
            "seed": seed,
            "bearing": config.bearing.name,
            "fault": self.fault.kind,
            "fault_onset_s": self.fault.onset_s,
            "severity": [self.fault.start_severity, self.fault.end_severity],
            "growth_s": self.fault.growth_s,
        }
        log.info("simulated machine: %s", self.machine)

    @property
    def time_s(self) -> float:
        return self._simulator.time_s

    def read(self, n: int) -> np.ndarray:
        chunk = self._simulator.render(n)
        self._pacer.wait(n)
        return chunk

    def close(self) -> None:
        pass


class ArraySource:
    """Samples already in memory (a loaded file), handed out in chunks until they run out."""

    def __init__(self, samples: np.ndarray, sample_rate: float, *, realtime: bool = False):
        self.sample_rate = float(sample_rate)
        self._samples = samples
        self._position = 0
        self._pacer = Pacer(self.sample_rate, realtime)

    def read(self, n: int) -> np.ndarray | None:
        if self._position >= len(self._samples):
            return None
        chunk = self._samples[self._position : self._position + n]
        self._position += len(chunk)
        self._pacer.wait(len(chunk))
        return chunk

    def close(self) -> None:
        pass


class StdinSource:
    """Text samples, one line each (``axes`` numbers split by commas/whitespace), in g."""

    def __init__(self, sample_rate: float, axes: int, stream: TextIO | None = None):
        self.sample_rate = float(sample_rate)
        self._axes = axes
        self._stream = stream if stream is not None else sys.stdin
        self._line = 0

    def read(self, n: int) -> np.ndarray | None:
        rows: list[list[float]] = []
        while len(rows) < n:
            text = self._stream.readline()
            if not text:
                break
            self._line += 1
            cells = text.replace(",", " ").split()
            if not cells:
                continue
            try:
                values = [float(cell) for cell in cells]
            except ValueError as exc:
                if self._line == 1:
                    continue  # a header line
                raise DataError(
                    f"stdin line {self._line}: {text.strip()!r} is not {self._axes} numbers "
                    "in g separated by commas or spaces"
                ) from exc
            if len(values) != self._axes:
                raise DataError(
                    f"stdin line {self._line}: {len(values)} values, the model expects "
                    f"{self._axes} axes (one sample per line)"
                )
            rows.append(values)
        if not rows:
            return None
        return np.asarray(rows, dtype=np.float32)

    def close(self) -> None:
        pass


def open_source(
    bundle: Bundle,
    kind: str = "sim",
    *,
    path: Path | None = None,
    seed: int = 0,
    realtime: bool = False,
) -> SimSource | ArraySource | StdinSource:
    """A source of ``(n, axes)`` accelerometer chunks in g at the bundle's sample rate."""
    config = bundle.feature_config
    rate, axes = float(config["sample_rate"]), int(config["axes"])
    if kind == "sim":
        return SimSource(rate, axes, seed=seed, realtime=realtime)
    if kind == "stdin":
        return StdinSource(rate, axes)
    if kind == "file":
        if path is None:
            raise ConfigError("a vibration file source needs a path: pass --path FILE")
        recording = load_recording(path, sample_rate=rate)
        if recording.samples.shape[1] != axes:
            raise DataError(
                f"{path} has {recording.samples.shape[1]} channel(s) but the bundle's model "
                f"expects {axes}: record all {axes} axes, or train a model on this channel layout"
            )
        recording = resample(recording, rate)
        return ArraySource(recording.samples, rate, realtime=realtime)
    raise ConfigError(f"unknown vibration source {kind!r}; choose one of {', '.join(KINDS)}")
