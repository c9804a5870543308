"""Air-quality sensor sources: simulated station, a replayed CSV file, or CSV rows on stdin.

Every source returns chunks ``(n_rows, n_inputs)`` float64 with the columns in the bundle's input
order (``bundle.feature_config["inputs"]``; ``hour``/``weekday`` come from the rows' timestamps, as
a device's clock would give them) and NaN for missing values. Rows are periods of
``feature_config["row_seconds"]`` (hourly), so ``sample_rate`` is ``1 / row_seconds`` rows per second.

``realtime=True`` paces ``read`` at that rate (one row per hour for an hourly model); the default
replays as fast as the caller reads. The sim and file sources also keep the reference
concentrations of the rows last read in ``last_references`` (``(n, n_targets)``, NaN when the
reference analyser had no value), so a demo can show estimate beside truth.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import ConfigError, DataError
from device_sim.sources.air_quality_sim import AirQualitySimulator
from device_sim.sources.pacing import Pacer
from device_sim.sources.uci_air_csv import (
    AirQualityTable,
    LoadReport,
    derived_time_column,
    iter_rows,
    load_csv,
)
from device_sim.tasks.air_quality.head import AirQualityHead

log = logging.getLogger(__name__)

KINDS = ("sim", "file", "stdin")


class _Base:
    def __init__(self, bundle: Bundle, realtime: bool) -> None:
        config = bundle.feature_config
        self.inputs = tuple(config["inputs"])
        self.row_seconds = float(config.get("row_seconds", 3600.0))
        self.sample_rate = 1.0 / self.row_seconds
        self.targets = tuple(AirQualityHead.from_dict(bundle.head).names)
        self.last_references: np.ndarray = np.empty((0, len(self.targets)))
        self._pacer = Pacer(self.sample_rate, realtime)
        self._closed = False

    def close(self) -> None:
        self._closed = True


class SimulatedSource(_Base):
    """An endless simulated station (see :mod:`device_sim.sources.air_quality_sim`)."""

    def __init__(self, bundle: Bundle, seed: int, realtime: bool) -> None:
        super().__init__(bundle, realtime)
        self.simulator = AirQualitySimulator(seed, step_seconds=self.row_seconds)

    def read(self, n: int) -> np.ndarray | None:
        if self._closed:
            return None
        table = self.simulator.generate(max(int(n), 0))
        self.last_references = _references(table, self.targets)
        self._pacer.wait(len(table))
        return table.matrix(self.inputs)


class FileSource(_Base):
    """Replays a UCI/generic CSV once, in time order; ``report`` says what the loader skipped."""

    def __init__(self, bundle: Bundle, path: Path, realtime: bool) -> None:
        super().__init__(bundle, realtime)
        column_map = tuple(tuple(pair) for pair in bundle.extra.get("column_map", ()))
        table = load_csv(path, column_map, row_seconds=self.row_seconds)
        missing = [name for name in self.inputs if not table.has(name)]
        if missing:
            raise DataError(
                f"{path} lacks the model's input(s) {missing} (it has {', '.join(table.columns)}"
                f"{'' if table.timestamps is not None else ', no timestamps'}); map columns with "
                "--column SOURCE=CANONICAL when training"
            )
        self.report = table.report
        self._rows = table.matrix(self.inputs)
        self._references = _references(table, self.targets)
        self._position = 0

    def read(self, n: int) -> np.ndarray | None:
        if self._closed or self._position >= len(self._rows):
            return None
        stop = min(self._position + max(int(n), 1), len(self._rows))
        chunk = self._rows[self._position : stop]
        self.last_references = self._references[self._position : stop]
        self._position = stop
        self._pacer.wait(len(chunk))
        return chunk


class StdinSource(_Base):
    """CSV rows on a text stream (stdin): a header line, then rows as they arrive.

    Rows are put on the hourly grid as they complete (faster readings are averaged per hour, a
    missing hour becomes a NaN row), so a period is emitted when the first row of the next arrives.
    """

    def __init__(self, bundle: Bundle, stream: TextIO, realtime: bool) -> None:
        super().__init__(bundle, realtime)
        column_map = tuple(tuple(pair) for pair in bundle.extra.get("column_map", ()))
        self.report = LoadReport(source="stdin")
        self._rows: Iterator = iter_rows(
            stream, column_map, row_seconds=self.row_seconds, source="stdin", report=self.report
        )
        self._checked = False

    def _convert(self, parser, timestamp: int | None, values: np.ndarray) -> np.ndarray:
        if not self._checked:
            missing = [
                name
                for name in self.inputs
                if name not in parser.columns and not (name in ("hour", "weekday") and parser.timed)
            ]
            if missing:
                raise DataError(
                    f"the CSV on stdin lacks the model's input(s) {missing}; its header has "
                    f"{', '.join(parser.header)}"
                )
            self._checked = True
        row = np.empty(len(self.inputs))
        for i, name in enumerate(self.inputs):
            if name in ("hour", "weekday"):
                row[i] = derived_time_column(np.array([timestamp]), name)[0]
            else:
                row[i] = values[parser.columns.index(name)]
        return row

    def read(self, n: int) -> np.ndarray | None:
        if self._closed:
            return None
        rows = []
        for parser, timestamp, values in self._rows:
            rows.append(self._convert(parser, timestamp, values))
            if len(rows) >= max(int(n), 1):
                break
        if not rows:
            return None
        return np.stack(rows)


def _references(table: AirQualityTable, targets: tuple[str, ...]) -> np.ndarray:
    columns = [
        table.column(name) if table.has(name) else np.full(len(table), np.nan) for name in targets
    ]
    return np.stack(columns, axis=1) if columns else np.empty((len(table), 0))


def open_source(
    bundle: Bundle,
    kind: str = "sim",
    *,
    path: Path | None = None,
    seed: int = 0,
    realtime: bool = False,
    stream: TextIO | None = None,
):
    """Open a source of raw sensor rows for ``bundle``: ``sim``, ``file`` (needs ``path``), ``stdin``."""
    if kind == "sim":
        return SimulatedSource(bundle, seed, realtime)
    if kind == "file":
        if path is None:
            raise ConfigError("the air_quality file source needs a CSV path (--path FILE.csv)")
        return FileSource(bundle, Path(path), realtime)
    if kind == "stdin":
        return StdinSource(bundle, stream if stream is not None else sys.stdin, realtime)
    raise ConfigError(f"unknown air_quality source {kind!r}; choose one of {', '.join(KINDS)}")
