"""Device-side task logic: turn a model output into payload fields and events.

Each task module (``device_sim/tasks/kws.py`` …) defines a ``TaskRuntime`` class built from a bundle::

    class TaskRuntime:
        hop_samples: int                      # raw samples between two windows
        def __init__(self, bundle: Bundle): ...
        def check_window(self, window: np.ndarray) -> str | None    # before the front end
        def invalid_result(self, reason: str) -> TaskResult         # instead of inferring
        def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult

``output`` is the dequantized model output of one window (no batch axis).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from device_sim.bundle import TASKS, Bundle
from device_sim.errors import BundleError


@dataclass
class TaskResult:
    """What one window produced: payload fields, and an event when something happened.

    ``fields`` go into every prediction message (label/scores, anomaly score/threshold,
    estimates with units …); ``event`` (or None) is published on the task's event topic (keyword
    detected, vibration alarm raised/cleared, air-quality band changed).
    """

    fields: dict[str, Any]
    event: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TaskRuntime(Protocol):
    hop_samples: int

    def check_window(self, window: np.ndarray) -> str | None:
        """Why a raw window (NaN/Inf, clipped, missing inputs …) must not be inferred, or None."""
        ...

    def invalid_result(self, reason: str) -> TaskResult:
        """What to publish for a window that was not inferred (``valid: false`` and the reason)."""
        ...

    def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult: ...


def runtime_for(bundle: Bundle) -> TaskRuntime:
    """Build the task runtime that interprets ``bundle``'s outputs."""
    if bundle.task not in TASKS:
        raise BundleError(f"unknown task {bundle.task!r} in {bundle.manifest_path}")
    module = importlib.import_module(f"device_sim.tasks.{bundle.task}")
    return module.TaskRuntime(bundle)
