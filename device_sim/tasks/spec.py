"""What a task tells the rest of tinyfleet about itself: one :class:`TaskSpec` per task folder.

Each ``device_sim/tasks/<task>/spec.py`` declares ``SPEC = TaskSpec(...)``; the registry in
:mod:`device_sim.tasks` finds them. Shared code (quantize report, tune, fleet view, Home Assistant
discovery, the CLI) asks the spec instead of testing ``bundle.task`` against a name, so adding a
task is adding one folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from device_sim.errors import BundleError

if TYPE_CHECKING:
    from device_sim.bundle import Bundle


class Head(Protocol):
    """A typed bundle head: built from ``bundle.json["head"]`` and written back unchanged."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Head: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Headline:
    """The one number that says how good a model is, and how much int8 may cost of it.

    ``metric`` is the key the task's ``score`` returns (and ``tinyfleet tune`` optimises);
    ``int8_tolerance`` is the loss beyond which quantization-aware training is tried — in the
    metric's units, or a fraction of the float value when ``relative``.
    """

    metric: str
    higher_is_better: bool
    int8_tolerance: float
    relative: bool = False


@dataclass(frozen=True)
class DriftStatistics:
    """What ``tinyfleet monitor`` watches for a task, computed the same way on both sides.

    * ``reference(bundle, evaluation)`` — per statistic, the values the bundle's *int8* model gives
      on its held-out evaluation set (``evaluation.npz``): an array per name. Written into
      ``bundle.extra["monitoring"]`` at build time (:mod:`device_sim.monitoring`).
    * ``observe(fields)`` — the same statistics from one published prediction's task fields
      (a name absent or None when that prediction does not carry it).
    * ``categories(bundle)`` — the statistics whose values are labels, with every possible label:
      compared by frequencies (chi-square, PSI); the others by distribution (PSI, KS).
    * ``description`` — what is watched, in a few words (CLI help, docs).
    * ``window`` — how many of a device's latest predictions are compared (``tinyfleet monitor
      --window`` overrides it); ``min_windows`` — how many it needs before the first verdict.
      Hourly air-quality estimates follow days and weeks, so they need more than a vibration
      sensor's scores.
    """

    reference: Callable[[Bundle, dict[str, Any]], dict[str, Any]]
    observe: Callable[[Mapping[str, Any]], dict[str, Any]]
    description: str
    categories: Callable[[Bundle], dict[str, list[str]]] = lambda bundle: {}
    window: int = 200
    min_windows: int = 50


# (component, object_id, config) of one Home Assistant entity; ``common(object_id, name)`` gives the
# keys every entity shares (unique id, availability, device block), built by the discovery module.
HaEntity = tuple[str, str, dict[str, Any]]
CommonKeys = Callable[[str, str], dict[str, Any]]


@dataclass(frozen=True)
class TaskSpec:
    """Everything shared code needs to know about one task.

    * ``name`` — the task's name in bundles, topics and CLI arguments; ``order`` — where it sits in
      lists (CLI choices, ``demo --tasks`` default, fleet start order), which predate discovery and
      must not be reshuffled by the alphabet. ``title`` — the task in a few words (``tinyfleet
      --help``).
    * ``option_help`` — help for the ``tinyfleet build``/``evaluate``/``tune`` options only this
      task reads (flag → text); the CLI shows it as ``<task>: <text>``.
    * ``head_type`` — the typed ``bundle.json["head"]`` (``from_dict``/``to_dict`` round-trip).
    * ``headline`` — metric, direction and int8 tolerance (quantize report, tune, report).
    * ``headline_value(metrics)`` — the value the tolerance applies to when it is not simply
      ``metrics[headline.metric]`` (air quality: the worst target's MAE); None means "that key".
    * ``per_part_loss(float, int8)`` — per-part relative losses (air quality: per target) when the
      verdict is the worst part, else None: the quantize report then compares the headline values.
      ``part_name`` names the parts in the report (``target``: ``per_target_relative_loss``).
    * ``figure(metrics)`` — (label, value) a person compares between float and int8 (the demo's
      table: accuracy, AUC, or the per-target MAEs joined by "/").
    * ``summary(metrics)`` — the headline in one line, for logs and reports.
    * ``ha_entities(device_id, bundle, common)`` — Home Assistant discovery configs.
    * ``fleet_cells(prediction)`` — the fleet view's cells for a prediction (``{"prediction":
      text}``; ``{}`` when it lacks the task's fields, and the page shows it as raw JSON).
    * ``alarm_state(event)`` — True/False when an event raises/clears the alarm the fleet view
      shows, None for other events (None: the task has no alarm).
    * ``demo_source`` — what feeds the demo's simulated device, in words.
    * ``live_microphone`` — ``--source mic`` (arecord) can feed it.
    * ``calibrate(bundle, csv, out, column_map, prior_hours)`` — ``tinyfleet calibrate``: the
      recalibrated bundle and its report fields; None when the task has no field calibration.
    * ``drift`` — the statistics ``tinyfleet monitor`` compares live predictions with
      (:class:`DriftStatistics`); None when the task declares none (silence and invalid windows
      are still watched).
    """

    name: str
    order: int
    title: str
    head_type: type
    headline: Headline
    figure: Callable[[Mapping[str, Any]], tuple[str, Any]]
    summary: Callable[[Mapping[str, Any]], str]
    ha_entities: Callable[[str, Bundle, CommonKeys], list[HaEntity]]
    fleet_cells: Callable[[Mapping[str, Any]], dict[str, Any]]
    demo_source: str
    headline_value: Callable[[Mapping[str, Any]], float | None] | None = None
    per_part_loss: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, float]] | None = None
    part_name: str = "part"
    alarm_state: Callable[[Mapping[str, Any]], bool | None] | None = None
    option_help: Mapping[str, str] = field(default_factory=dict)
    live_microphone: bool = False
    calibrate: Callable[..., tuple[Bundle, dict[str, Any]]] | None = None
    drift: DriftStatistics | None = None

    def head(self, bundle: Bundle) -> Any:
        """``bundle.head`` as this task's typed head (a BundleError that names the file if bad)."""
        try:
            return self.head_type.from_dict(bundle.head)
        except BundleError as exc:
            raise BundleError(f"{bundle.manifest_path}: {exc}") from exc

    def headline_of(self, metrics: Mapping[str, Any]) -> float | None:
        """The value the int8 tolerance applies to, from a task's ``score`` output."""
        if self.headline_value is not None:
            return self.headline_value(metrics)
        value = metrics.get(self.headline.metric)
        return None if value is None else float(value)


def fixed(value: Any, digits: int) -> str:
    """A number with ``digits`` decimals for a fleet-view cell; anything else (None, text) as is."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)
