"""Search-space parsing, budgets and Pareto bookkeeping of `tinyfleet tune` (no training)."""

from __future__ import annotations

import optuna
import pytest

from device_sim.errors import ConfigError
from pipeline.search import (
    Budget,
    distance_to_front,
    metric_direction,
    pareto_front,
    parse_knob,
    parse_override,
    parse_space,
)


def test_every_task_search_space_parses_into_suggestible_knobs():
    from training.tasks import task_module

    for task in ("vibration", "air_quality", "kws"):
        try:
            module = task_module(task)
        except ImportError:
            continue  # a task still being written
        space = getattr(module, "SEARCH_SPACE", None)
        if not space:
            continue
        knobs = parse_space(space)
        study = optuna.create_study(directions=["maximize", "minimize"])
        trial = study.ask()
        values = {knob.name: knob.suggest(trial) for knob in knobs}
        # every knob is searched except documented ones without a range ("int: …")
        unsearched = {
            name for name, spec in space.items() if isinstance(spec, str) and ".." not in spec
        }
        unsearched -= {n for n, spec in space.items() if str(spec).lstrip().startswith("'")}
        assert set(values) == set(space) - unsearched, task
        assert len(values) >= 3, task


def test_description_strings_become_ranges_and_choices():
    knobs = {
        k.name: k
        for k in parse_space(
            {
                "width": "int 16..64: units",
                "learning_rate": "float 3e-4..3e-3 (log scale)",
                "sparsity": "float 0.0..0.8: final sparsity",
                "band_scale": "'log' or 'linear' band spacing",
                "depth": (1, 5),
                "n_mels": [10, 20, 40],
                "dropout": (0.0, 0.4),
                "lr2": (5e-4, 1e-2),
            }
        )
    }
    assert (knobs["width"].integer, knobs["width"].low, knobs["width"].high) == (True, 16, 64)
    assert knobs["learning_rate"].log and not knobs["sparsity"].log
    assert knobs["band_scale"].choices == ("log", "linear")
    assert knobs["depth"].integer and knobs["n_mels"].choices == (10, 20, 40)
    assert not knobs["dropout"].log and knobs["lr2"].log  # ratio >= 10 → log scale


def test_unreadable_range_and_unknown_override_say_what_to_write(caplog):
    with pytest.raises(ConfigError, match="int LOW..HIGH"):
        parse_knob("width", "sixteen to sixty-four")
    knobs = parse_space({"alarm_k": "int: windows that raise the alarm", "width": [8, 16]})
    assert [k.name for k in knobs] == ["width"]  # documented without a range: not searched
    assert "alarm_k" in caplog.text
    pinned = parse_space({"alarm_k": "int: windows"}, {"alarm_k": (3, 5)})
    assert pinned[0].choices == (3, 5)
    with pytest.raises(ConfigError, match="this task tunes: width"):
        parse_space({"width": [8, 16]}, {"widht": (8,)})


def test_override_pins_or_restricts_a_knob():
    assert parse_override("width=8") == ("width", (8,))
    assert parse_override("lr=1e-3,2e-3") == ("lr", (1e-3, 2e-3))
    assert parse_override("band_scale=log") == ("band_scale", ("log",))
    knobs = {k.name: k for k in parse_space({"width": "int 8..64: x"}, {"width": (8, 16)})}
    assert knobs["width"].choices == (8, 16)
    with pytest.raises(ConfigError):
        parse_override("width")


def test_budget_violations_are_positive_only_when_over():
    budget = Budget(flash_bytes=20 * 1024, arena_bytes=8 * 1024, macs=100_000)
    inside = {"flash_bytes": 20 * 1024, "arena_bytes": 4000, "macs": 50_000}
    over_arena = {"flash_bytes": 1000, "arena_bytes": 9000, "macs": 50_000}
    assert budget.fits(inside) and max(budget.violations(inside)) <= 0
    assert not budget.fits(over_arena)
    assert budget.violations(over_arena)[1] == 9000 - 8 * 1024
    assert not budget.fits({"flash_bytes": 1000, "arena_bytes": None, "macs": 1})  # unmeasured
    assert Budget(1, 1).violations({"flash_bytes": 0, "arena_bytes": 0})[2] == 0.0


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    points = [
        {"trial": 0, "auc": 0.90, "flash_bytes": 10_000},
        {"trial": 1, "auc": 0.95, "flash_bytes": 20_000},
        {"trial": 2, "auc": 0.85, "flash_bytes": 15_000},  # dominated by 0
        {"trial": 3, "auc": 0.97, "flash_bytes": 40_000},
        {"trial": 4, "auc": 0.95, "flash_bytes": 30_000},  # dominated by 1
    ]
    front = pareto_front(points, metric="auc", direction="maximize")
    assert [p["trial"] for p in front] == [0, 1, 3]
    errors = [
        {"trial": i, "mae": m, "flash_bytes": f}
        for i, (m, f) in enumerate([(5, 1), (3, 2), (4, 3)])
    ]
    assert [p["trial"] for p in pareto_front(errors, metric="mae", direction="minimize")] == [0, 1]
    assert metric_direction("mae_co") == "minimize" and metric_direction("auc") == "maximize"


def test_distance_to_front_measures_metric_gap_and_flash_saving():
    front = [
        {"auc": 0.90, "flash_bytes": 10_000},
        {"auc": 0.95, "flash_bytes": 20_000},
    ]
    default = {"auc": 0.92, "flash_bytes": 25_000}
    gap = distance_to_front(front, default, metric="auc", direction="maximize")
    assert gap["metric_gap"] == pytest.approx(0.03)  # 0.95 at no more flash
    assert gap["cost_saving"] == 5_000  # 0.95 already at 20 000 B
    assert gap["dominated"]
    empty = distance_to_front([], default, metric="auc", direction="maximize")
    assert empty == {"metric_gap": None, "cost_saving": None, "dominated": False}
    on_front = distance_to_front(front, front[0], metric="auc", direction="maximize")
    assert on_front["metric_gap"] == 0 and not on_front["dominated"]
