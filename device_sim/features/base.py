"""Feature-config registry and the front-end protocol every task's front end follows."""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from device_sim.errors import BundleError

# Bounds on what a bundle's feature config may make the loader allocate (issue #20): the largest
# real front end (vibration, 4096-sample windows) needs ~0.3 M array elements; a config that asks
# for 50x more is refused before anything is built, instead of exhausting a device's memory.
MAX_FRONTEND_ELEMENTS = 2**24  # array elements (128 MiB as float64), constants + one window
MAX_CONFIG_NUMBER = 2**24  # any single number in a feature config
MAX_CONFIG_ITEMS = 4096  # any list in a feature config


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

    def work_elements(self) -> int:
        """Array elements :meth:`build` allocates plus one window's work arrays (an estimate
        within a small factor), so a bundle's config can be bounded before anything is built."""
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
            _check_number_sizes(cls.kind, key, value)
            values[key] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


def _check_number_sizes(kind: str, key: str, value: Any) -> None:
    """Refuse a huge or non-finite number, or a huge list, before the config is even constructed."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_CONFIG_ITEMS:
        raise BundleError(
            f"feature config {kind!r} field {key!r} has {len(items)} items: more than a front end "
            f"uses (limit {MAX_CONFIG_ITEMS}); the bundle is corrupt or hostile, rebuild it"
        )
    for item in items:
        # Integers size arrays, so their magnitude is bounded; a float (a scale, a clip bound such
        # as -1e9 for "no clip") only has to be finite. work_elements() bounds what is allocated.
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        too_large = isinstance(item, int) and abs(item) > MAX_CONFIG_NUMBER
        if too_large or not math.isfinite(item):
            raise BundleError(
                f"feature config {kind!r} field {key!r} = {item!r} is outside what a front "
                f"end can use (|x| <= {MAX_CONFIG_NUMBER}); the bundle is corrupt or "
                "hostile, rebuild it"
            )


def check_frontend_size(config: FeatureConfig) -> FeatureConfig:
    """BundleError when building ``config``'s front end would allocate too much (see the bounds)."""
    elements = config.work_elements()
    if not elements <= MAX_FRONTEND_ELEMENTS:
        raise BundleError(
            f"the bundle's {config.kind} front end would need about {elements:.3g} array elements "
            f"(limit {MAX_FRONTEND_ELEMENTS}): the bundle is corrupt or hostile; rebuild it"
        )
    return config


_REGISTRY: dict[str, type[FeatureConfig]] = {}


def _import_feature_modules() -> None:
    """Import every module of :mod:`device_sim.features`: each registers its config kinds.

    Done only when a bundle names a kind not registered yet (usually the device imported the
    module it needs already), so a new front end is a new module here, named nowhere else.
    """
    import device_sim.features as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


C = TypeVar("C", bound=type[FeatureConfig])


def register_feature_config(cls: C) -> C:
    """Class decorator: make a config kind loadable from a bundle."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} must set the class attribute 'kind'")
    _REGISTRY[cls.kind] = cls
    return cls


def feature_config_from_dict(data: Mapping[str, Any]) -> FeatureConfig:
    kind = data.get("kind")
    if kind not in _REGISTRY:
        _import_feature_modules()
    if kind not in _REGISTRY:
        raise BundleError(
            f"the bundle's feature config has unknown kind {kind!r}; known: {sorted(_REGISTRY)}"
        )
    try:
        config = _REGISTRY[kind].from_dict(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"feature config of kind {kind!r} is malformed: {exc}") from exc
    return check_frontend_size(config)


def frontend_from_dict(data: Mapping[str, Any]) -> FrontEnd:
    return feature_config_from_dict(data).build()
