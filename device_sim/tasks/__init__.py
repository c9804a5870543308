"""Device-side task logic, and the registry of tasks: one folder per task, found, never named.

Each task folder (``device_sim/tasks/<task>/``) holds ``spec.py`` (``SPEC``: a
:class:`~device_sim.tasks.spec.TaskSpec`), ``head.py`` (the typed bundle head) and ``runtime.py``,
which defines a ``TaskRuntime`` class built from a bundle::

    class TaskRuntime:
        hop_samples: int                      # raw samples between two windows
        def __init__(self, bundle: Bundle): ...
        def check_window(self, window: np.ndarray) -> str | None    # before the front end
        def invalid_result(self, reason: str) -> TaskResult         # instead of inferring
        def process(self, output: np.ndarray, features: np.ndarray) -> TaskResult

``output`` is the dequantized model output of one window (no batch axis). Adding a task is adding
a folder: :func:`task_names` discovers it with :mod:`pkgutil`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from device_sim.errors import BundleError

if TYPE_CHECKING:
    from device_sim.bundle import Bundle
    from device_sim.tasks.spec import TaskSpec


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


@functools.cache
def _specs() -> dict[str, TaskSpec]:
    """Every task folder's ``SPEC``, in the specs' ``order`` (imported once, on first use)."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            spec = importlib.import_module(f"{__name__}.{module.name}.spec").SPEC
            if spec.name != module.name:
                raise BundleError(f"device_sim/tasks/{module.name}/spec.py names {spec.name!r}")
            found.append(spec)
    return {spec.name: spec for spec in sorted(found, key=lambda s: (s.order, s.name))}


def task_names() -> tuple[str, ...]:
    """The known tasks, in their display order (CLI choices, demo, fleet start order)."""
    return tuple(_specs())


def spec_for(name: str) -> TaskSpec:
    """The spec of task ``name``; a BundleError that lists the known tasks if there is none."""
    specs = _specs()
    if name not in specs:
        raise BundleError(f"unknown task {name!r}; expected one of {', '.join(specs)}")
    return specs[name]


def runtime_for(bundle: Bundle) -> TaskRuntime:
    """Build the task runtime that interprets ``bundle``'s outputs."""
    if bundle.task not in _specs():
        raise BundleError(f"unknown task {bundle.task!r} in {bundle.manifest_path}")
    module = importlib.import_module(f"{__name__}.{bundle.task}.runtime")
    return module.TaskRuntime(bundle)
