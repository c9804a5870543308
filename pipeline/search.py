"""Search-space and Pareto bookkeeping for ``tinyfleet tune``, independent of any training code.

A task module's ``SEARCH_SPACE`` maps knob names (read with ``TrainOptions.knob``) to ranges:

* a ``list`` → categorical choices, e.g. ``"width": [4, 8, 16]``;
* a 2-``tuple`` of numbers → a range: two ints → an integer range (inclusive), floats → a float
  range, sampled on a log scale when ``high / low >= 10`` (learning rates);
* a ``dict`` with ``low``/``high`` (and optional ``log``, ``step``) or ``choices``;
* a description string, as ``training/vibration.py`` writes them: ``"int 16..64: why"``,
  ``"float 3e-4..3e-3 (log scale)"`` or ``"'log' or 'linear' band spacing"`` (quoted choices).

Everything here is plain Python/numpy (Optuna is imported only to suggest values), so the Pareto
logic is easy to test and reuse in benchmarks and reports.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from device_sim.errors import ConfigError

log = logging.getLogger(__name__)

# Headline metrics where smaller is better; anything else (accuracy, auc, f1 …) is maximised.
_MINIMISED = ("mae", "rmse", "mse", "error", "loss", "wer")


@dataclass(frozen=True)
class Knob:
    """One tunable knob: either ``choices`` or a numeric ``low``..``high`` range."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this knob's value."""
        if self.choices is not None:
            if len(self.choices) == 1:
                return self.choices[0]
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)


def parse_knob(name: str, spec: Any) -> Knob:
    """One ``SEARCH_SPACE`` entry → :class:`Knob` (see the module docstring for the forms)."""
    if isinstance(spec, Knob):
        return spec
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"knob {name!r} has an empty list of choices")
        return Knob(name, choices=tuple(spec))
    if isinstance(spec, tuple) and len(spec) == 2 and all(_is_number(v) for v in spec):
        low, high = spec
        if low > high:
            raise ConfigError(f"knob {name!r}: range ({low}, {high}) has low > high")
        integer = all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
        log = not integer and low > 0 and high / low >= 10
        return Knob(name, low=low, high=high, log=log, integer=integer)
    if isinstance(spec, str):
        return _parse_description(name, spec)
    if isinstance(spec, Mapping):
        if "choices" in spec:
            return parse_knob(name, list(spec["choices"]))
        try:
            low, high = spec["low"], spec["high"]
        except KeyError as exc:
            raise ConfigError(f"knob {name!r}: a dict range needs 'low' and 'high'") from exc
        integer = bool(spec.get("int", isinstance(low, int) and isinstance(high, int)))
        return Knob(
            name,
            low=low,
            high=high,
            log=bool(spec.get("log", False)),
            step=spec.get("step"),
            integer=integer,
        )
    raise ConfigError(
        f"knob {name!r} has an unsupported range {spec!r}: use a list of choices, a (low, high) "
        "tuple or a dict with low/high"
    )


_RANGE_TEXT = re.compile(r"^\s*(int|float)\s+([-+0-9.eE]+)\s*\.\.\s*([-+0-9.eE]+)")
_QUOTED = re.compile(r"'([^']*)'")


def _parse_description(name: str, text: str) -> Knob:
    """``"int 16..64: …"``, ``"float 3e-4..3e-3 (log scale)"``, ``"'a' or 'b' …"`` → Knob."""
    match = _RANGE_TEXT.match(text)
    if match:
        kind, low_text, high_text = match.groups()
        if kind == "int":
            return parse_knob(name, (int(float(low_text)), int(float(high_text))))
        low, high = float(low_text), float(high_text)
        if low > high:
            raise ConfigError(f"knob {name!r}: range {text!r} has low > high")
        return Knob(name, low=low, high=high, log="log scale" in text.lower())
    choices = _QUOTED.findall(text.split(":")[0])
    if text.lstrip().startswith("'") and choices:
        return Knob(name, choices=tuple(choices))
    raise ConfigError(
        f"knob {name!r}: cannot read the range {text!r}; write 'int LOW..HIGH: …', "
        "'float LOW..HIGH (log scale): …' or quoted choices \"'a' or 'b'\""
    )


def parse_space(
    space: Mapping[str, Any], overrides: Mapping[str, Sequence[Any]] = ()
) -> list[Knob]:
    """The task's search space with command-line ``overrides`` (name → choices) applied.

    An override with one value pins the knob; with several it replaces the range by those choices.
    Overriding a name the task does not list is an error (a typo would otherwise tune nothing).
    A description string without a range (``"int: debounce windows"``) documents a knob that is
    not searched unless overridden; it is logged, not an error.
    """
    overrides = dict(overrides)
    unknown = sorted(set(overrides) - set(space))
    if unknown:
        raise ConfigError(
            f"unknown knob(s) {', '.join(unknown)}; this task tunes: {', '.join(sorted(space))}"
        )
    knobs, unsearched = [], []
    for name, spec in space.items():
        if name in overrides:
            knobs.append(Knob(name, choices=tuple(overrides[name])))
        elif isinstance(spec, str) and not _has_range(spec):
            unsearched.append(name)  # documented (e.g. "int: …") but no range to search
        else:
            knobs.append(parse_knob(name, spec))
    if unsearched:
        log.warning(
            "not searched (their SEARCH_SPACE entry gives no range; pass --knob NAME=V1,V2 to "
            "search them): %s",
            ", ".join(unsearched),
        )
    return knobs


def _has_range(text: str) -> bool:
    """A description string that names a range or choices (see :func:`_parse_description`)."""
    return bool(_RANGE_TEXT.match(text)) or (
        text.lstrip().startswith("'") and bool(_QUOTED.findall(text.split(":")[0]))
    )


def parse_override(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"width=4,8"`` → ``("width", (4, 8))``; values become int/float/bool when they look so."""
    if "=" not in text:
        raise ConfigError(f"--knob expects NAME=VALUE[,VALUE…], got {text!r}")
    name, values = text.split("=", 1)
    parsed = tuple(_parse_scalar(v.strip()) for v in values.split(",") if v.strip())
    if not parsed:
        raise ConfigError(f"--knob {name}: give at least one value")
    return name.strip(), parsed


def _parse_scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_direction(name: str) -> str:
    """``"minimize"`` for error-like metric names (mae, rmse …), else ``"maximize"``."""
    lowered = name.lower()
    return "minimize" if any(lowered.startswith(p) for p in _MINIMISED) else "maximize"


UNMEASURED = 1e18


@dataclass(frozen=True)
class Budget:
    """An MCU budget in bytes (flash for the model, RAM for the TFLM tensor arena) and MACs."""

    flash_bytes: int
    arena_bytes: int
    macs: int | None = None

    def violations(self, measured: Mapping[str, Any]) -> list[float]:
        """Optuna constraint values: ≤ 0 means within budget (bytes, bytes, MACs over budget).

        Always three values (MACs count 0 without a MACs budget), so a study resumed with a
        different set of budget flags stores constraints of the same shape.
        """
        macs_over = 0.0
        if self.macs is not None:
            macs_over = _or_inf(measured.get("macs")) - self.macs
        return [
            float(measured["flash_bytes"]) - self.flash_bytes,
            _or_inf(measured.get("arena_bytes")) - self.arena_bytes,
            macs_over,
        ]

    def fits(self, measured: Mapping[str, Any]) -> bool:
        return all(v <= 0 for v in self.violations(measured))

    def to_dict(self) -> dict[str, Any]:
        return {"flash_bytes": self.flash_bytes, "arena_bytes": self.arena_bytes, "macs": self.macs}


def _or_inf(value: Any) -> float:
    """An unmeasured resource can never be shown to fit a budget (finite: SQLite stores it)."""
    return UNMEASURED if value is None else float(value)


def pareto_front(
    points: Iterable[Mapping[str, Any]], *, metric: str, direction: str, cost: str = "flash_bytes"
) -> list[dict[str, Any]]:
    """The points not dominated in (metric, cost), sorted by cost.

    A point dominates another when it is at least as good in both and better in one; equal points
    are all kept. ``direction`` is the metric's (``maximize``/``minimize``); cost is minimised.
    """
    sign = 1.0 if direction == "maximize" else -1.0
    items = [dict(p) for p in points if p.get(metric) is not None and p.get(cost) is not None]
    front = []
    for p in items:
        pm, pc = sign * float(p[metric]), float(p[cost])
        dominated = any(
            sign * float(q[metric]) >= pm
            and float(q[cost]) <= pc
            and (sign * float(q[metric]) > pm or float(q[cost]) < pc)
            for q in items
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (float(p[cost]), -sign * float(p[metric])))


def distance_to_front(
    front: Sequence[Mapping[str, Any]],
    point: Mapping[str, Any],
    *,
    metric: str,
    direction: str,
    cost: str = "flash_bytes",
) -> dict[str, Any]:
    """How far ``point`` (e.g. the default preset) sits from the Pareto ``front``.

    ``metric_gap``: how much better the best front point costing no more than ``point`` is (in the
    metric's units, positive = the front is better). ``cost_saving``: how much less the cheapest
    front point at least as good as ``point`` costs (positive = the front is cheaper; negative =
    being as good costs more on the front). ``dominated``: some front point is at least as good and
    no more costly (and strictly better in one).
    """
    sign = 1.0 if direction == "maximize" else -1.0
    value, spend = float(point[metric]), float(point[cost])
    cheaper = [p for p in front if float(p[cost]) <= spend]
    better = [p for p in front if sign * float(p[metric]) >= sign * value]
    metric_gap = None
    if cheaper:
        best = max(cheaper, key=lambda p: sign * float(p[metric]))
        metric_gap = sign * (float(best[metric]) - value)
    cost_saving = None
    if better:
        cost_saving = spend - min(float(p[cost]) for p in better)
    dominated = any(
        sign * float(p[metric]) >= sign * value
        and float(p[cost]) <= spend
        and (sign * float(p[metric]) > sign * value or float(p[cost]) < spend)
        for p in front
    )
    return {"metric_gap": metric_gap, "cost_saving": cost_saving, "dominated": dominated}
