"""Sensor sources: where a device's raw samples come from (simulators, files, stdin, microphone).

A source yields chunks of raw samples with time as the first axis (audio: ``(n,)`` float32 in
[-1, 1]; accelerometer: ``(n, axes)`` in g; gas sensors: ``(n, channels)`` rows). Each task module
(``device_sim/sources/kws.py`` …) provides::

    def open_source(bundle: Bundle, kind: str, *, path: Path | None = None, seed: int = 0,
                    realtime: bool = False) -> Source

with ``kind`` one of ``sim``, ``file``, ``stdin`` (and ``mic`` for kws where available).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import ConfigError


class Source(Protocol):
    """Raw samples in chunks; ``read`` returns None when the source is exhausted."""

    sample_rate: float  # samples per second along the first axis (rows per second for air quality)

    def read(self, n: int) -> np.ndarray | None: ...

    def close(self) -> None: ...


def open_source(
    bundle: Bundle,
    kind: str = "sim",
    *,
    path: Path | None = None,
    seed: int = 0,
    realtime: bool = False,
) -> Source:
    from device_sim.tasks import task_names

    if bundle.task not in task_names():
        raise ConfigError(f"unknown task {bundle.task!r}")
    module = importlib.import_module(f"device_sim.sources.{bundle.task}")
    return module.open_source(bundle, kind, path=path, seed=seed, realtime=realtime)
