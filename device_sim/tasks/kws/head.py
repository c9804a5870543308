"""The KWS bundle's head: the labels the classifier outputs and which of them are keywords.

Stored as JSON in ``bundle.json["head"]``; :meth:`KwsHead.from_dict` is the one place that reads it,
so a missing or misspelt field is a :class:`BundleError` that says to rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device_sim.errors import BundleError

NON_KEYWORDS = ("_silence_", "_unknown_")


@dataclass(frozen=True)
class KwsHead:
    """``labels`` in model output order; ``keywords`` the ones a detection may fire for (None:
    every label but ``_silence_``/``_unknown_``); ``silence``/``unknown`` name those two classes.

    The optional fields are None when a bundle does not record them, and :meth:`to_dict` leaves
    them out again, so ``bundle.json`` round-trips unchanged.
    """

    labels: tuple[str, ...]
    keywords: tuple[str, ...] | None = None
    silence: str | None = None
    unknown: str | None = None

    def __post_init__(self) -> None:
        if not self.labels:
            raise BundleError("the bundle lists no labels: rebuild it with `tinyfleet build kws`")

    @property
    def detectable(self) -> list[str]:
        """The labels a detection can fire for (what Home Assistant lists as event types)."""
        labels = list(self.keywords or self.labels)
        return [label for label in labels if label not in NON_KEYWORDS]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, as stored in ``bundle.json`` (absent optional fields stay absent)."""
        data: dict[str, Any] = {"labels": list(self.labels)}
        if self.keywords is not None:
            data["keywords"] = list(self.keywords)
        for key in ("silence", "unknown"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KwsHead:
        unknown = set(data) - {"labels", "keywords", "silence", "unknown"}
        if unknown:
            raise BundleError(
                f"the KWS head has unknown field(s) {sorted(unknown)}: the bundle was written by a "
                "newer tinyfleet"
            )
        try:
            labels = tuple(str(label) for label in data.get("labels") or ())
            keywords = data.get("keywords")
            return cls(
                labels=labels,
                keywords=None if keywords is None else tuple(str(k) for k in keywords),
                silence=None if data.get("silence") is None else str(data["silence"]),
                unknown=None if data.get("unknown") is None else str(data["unknown"]),
            )
        except TypeError as exc:
            raise BundleError(
                f"the KWS head is malformed ({exc}): rebuild the bundle with `tinyfleet build kws`"
            ) from exc
