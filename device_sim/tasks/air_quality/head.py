"""The air-quality bundle's head: per-target decoding statistics, bands, curve prior, correction.

Stored as JSON in ``bundle.json["head"]``; :meth:`AirQualityHead.from_dict` is the one place that
reads its top level, so a missing or misspelt field is a :class:`BundleError` that says to rebuild.
The nested tables keep their JSON shape here: :class:`~device_sim.tasks.air_quality.runtime.
OutputDecoder` and :class:`~device_sim.tasks.air_quality.runtime.CurvePrior` check and type them
where they are used, and keeping them as stored makes :meth:`to_dict` give back exactly the JSON it
was built from (a curve prior parsed into floats would turn a stored ``0`` into ``0.0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device_sim.errors import BundleError

_OPTIONAL = ("output", "bands", "prior", "explain", "correction")


@dataclass(frozen=True)
class AirQualityHead:
    """``targets``: per target ``name``, ``key``, ``unit`` (µg/m³, mg/m³) and the training part's
    ``log_mean``/``log_std``/``offset`` (plus linear ``mean``/``std``) of the output encoding.

    Optional (None when the bundle does not record it, and left out by :meth:`to_dict`):
    ``output`` (the decoding in words), ``bands`` (thresholds and names; the runtime's CAQI
    defaults when None), ``prior`` (the float curve prior), ``explain`` (input importance for the
    payload) and ``correction`` (written by ``tinyfleet calibrate``).
    """

    targets: tuple[Mapping[str, Any], ...]
    output: str | None = None
    bands: Mapping[str, Any] | None = None
    prior: Mapping[str, Any] | None = None
    explain: Mapping[str, Any] | None = None
    correction: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.targets:
            raise BundleError(
                "the air-quality head lists no targets: rebuild the bundle with "
                "`tinyfleet build air_quality`"
            )
        for target in self.targets:
            if not isinstance(target, Mapping) or "name" not in target or "unit" not in target:
                raise BundleError(
                    f"air-quality head target {target!r} lacks its name or unit: rebuild the bundle"
                )

    @property
    def names(self) -> list[str]:
        """Target names as in the training data (``CO(GT)`` …), in model output order."""
        return [str(t["name"]) for t in self.targets]

    def with_correction(self, correction: Mapping[str, Any] | None) -> AirQualityHead:
        """The same head with another field correction (None: uncorrected)."""
        return AirQualityHead(
            self.targets, self.output, self.bands, self.prior, self.explain, correction
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, as stored in ``bundle.json`` (absent optional fields stay absent)."""
        data: dict[str, Any] = {"targets": [dict(t) for t in self.targets]}
        for key in _OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                data[key] = dict(value) if isinstance(value, Mapping) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AirQualityHead:
        unknown = set(data) - {"targets", *_OPTIONAL}
        if unknown:
            raise BundleError(
                f"the air-quality head has unknown field(s) {sorted(unknown)}: the bundle was "
                "written by a newer tinyfleet"
            )
        if "targets" not in data:
            raise BundleError(
                "the air-quality head lacks its targets: rebuild the bundle with "
                "`tinyfleet build air_quality`"
            )
        targets = data["targets"]
        if not isinstance(targets, list | tuple):
            raise BundleError("the air-quality head's targets must be a list: rebuild the bundle")
        return cls(
            targets=tuple(targets),
            **{key: data.get(key) for key in _OPTIONAL},
        )
