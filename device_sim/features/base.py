"""Feature-config registry and the front-end protocol every task's front end follows."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from device_sim.errors import BundleError


class FrontEnd(Protocol):
    """Turns one window of raw samples into model input features (float32).

    ``window_samples`` is how many raw samples (audio samples, accelerometer frames, sensor rows) a
    window holds; ``feature_shape`` is the shape of what ``__call__`` returns, without a batch axis.
    """

    window_samples: int
    feature_shape: tuple[int, ...]

    def __call__(self, window: np.ndarray) -> np.ndarray: ...

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """Many windows stacked on a first axis → features ``(n, *feature_shape)``; each row is
        exactly what ``__call__`` gives for that window (a simulated fleet batches its devices)."""
        ...


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Base class: a frozen, JSON-serialisable front-end configuration.

    Subclasses set ``kind`` and implement :meth:`build`. Fields must be JSON types (int, float, str,
    bool, tuples of those); tuples round-trip through JSON lists.
    """

    kind: ClassVar[str] = ""

    def build(self) -> FrontEnd:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        return {"kind": self.kind, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names) - {"kind"}
        if unknown:
            raise BundleError(
                f"feature config of kind {cls.kind!r} has unknown field(s) {sorted(unknown)}: the "
                "bundle was written by a newer tinyfleet"
            )
        values = {}
        for key, value in data.items():
            if key == "kind":
                continue
            values[key] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


_REGISTRY: dict[str, type[FeatureConfig]] = {}
# Modules that define configs, imported lazily so a device only loads what its bundle needs.
_KNOWN_MODULES = {
    "log_mel": "device_sim.features.audio",
    "mfcc": "device_sim.features.audio",
    "vibration_bands": "device_sim.features.vibration",
    "air_quality_window": "device_sim.features.air_quality",
}

C = TypeVar("C", bound=type[FeatureConfig])


def register_feature_config(cls: C) -> C:
    """Class decorator: make a config kind loadable from a bundle."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} must set the class attribute 'kind'")
    _REGISTRY[cls.kind] = cls
    return cls


def feature_config_from_dict(data: Mapping[str, Any]) -> FeatureConfig:
    kind = data.get("kind")
    if kind not in _REGISTRY and kind in _KNOWN_MODULES:
        importlib.import_module(_KNOWN_MODULES[kind])
    if kind not in _REGISTRY:
        raise BundleError(
            f"the bundle's feature config has unknown kind {kind!r}; known: {sorted(_KNOWN_MODULES)}"
        )
    try:
        return _REGISTRY[kind].from_dict(data)
    except TypeError as exc:
        raise BundleError(f"feature config of kind {kind!r} is malformed: {exc}") from exc


def frontend_from_dict(data: Mapping[str, Any]) -> FrontEnd:
    return feature_config_from_dict(data).build()
