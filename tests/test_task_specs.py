"""Every task is one folder with a complete spec, and shared modules never name a task.

Adding a task is adding ``device_sim/tasks/<task>/`` (spec, head, runtime): the registry finds it,
and the quantize report, tune, Home Assistant discovery, the fleet view and the CLI ask its spec.
The grep test below keeps it so: a string literal (docstrings aside) that equals or starts with a
task name, or an import of a task's module, outside that task's own files fails it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from ops_fixtures import aq_targets, head_only_bundle

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks import runtime_for, spec_for, task_names
from device_sim.tasks.air_quality.runtime import DEFAULT_BANDS
from device_sim.tasks.spec import Headline, TaskSpec

ROOT = Path(__file__).resolve().parent.parent

# Heads as the tests' fixtures and the training stages write them (full and minimal), per task.
VIBRATION_FULL = {
    "anomaly_threshold": 1.7,
    "target_false_alarm_rate": 0.005,
    "feature_names": ["rms 0-100 Hz", "kurtosis", "shaft speed"],
    "feature_ranges_hz": [[0.0, 100.0], [0.0, 3200.0], [5.0, 60.0]],
    "feature_orders": [None, None, None],
    "error_scale": [0.5, 0.25, 1.0],
    "classes": ["normal", "bearing_fault"],
    "alarm_k": 5,
    "alarm_n": 8,
    "score": "mean(((features - output) / error_scale)^2) over the standardised features",
    "expected_false_alarm_rate": 0.004,
    "false_alarm_rate_upper_95": 0.008,
    "calibration_windows": 800,
    "effective_windows": 120.5,
    "exceedances": 3,
    "method": "empirical",
    "float_anomaly_threshold": 1.65,
    "baseline_thresholds": {"isolation_forest": 0.52},
}
EXAMPLE_HEADS: dict[str, list[dict]] = {
    "kws": [
        {"labels": ["a", "b", "c"]},
        {"labels": ["yes", "no", "_silence_", "_unknown_"], "keywords": ["yes", "no"]},
        {
            "labels": ["yes", "no", "_silence_", "_unknown_"],
            "keywords": ["yes", "no"],
            "silence": "_silence_",
            "unknown": "_unknown_",
        },
    ],
    "vibration": [
        {"anomaly_threshold": 0.75, "alarm_k": 3, "alarm_n": 5},
        {
            "anomaly_threshold": 0.5,
            "feature_names": ["a", "b"],
            "feature_ranges_hz": [[0.0, 1.0], [1.0, 2.0]],
            "alarm_k": 3,
            "alarm_n": 5,
        },
        VIBRATION_FULL,
    ],
    "air_quality": [
        {"targets": aq_targets()},
        {"targets": aq_targets(), "bands": dict(DEFAULT_BANDS)},
        {
            "targets": aq_targets(),
            "output": "per target: z = prior(features) + residual_scale * output; value = "
            "exp(z * log_std + log_mean) - offset, clipped at 0",
            "bands": dict(DEFAULT_BANDS),
            "prior": {
                "feature_index": [0],
                "knots": [[0.5]],
                "bias": [0, 0.1, 0.2],
                "slope": [[1], [0.5], [0.25]],
                "hinge": [[[0.1]], [[0.0]], [[0.2]]],
                "residual_scale": [0.3, 0.3, 0.3],
            },
            "explain": {"in_payload": True, "top": 2, "per_target": {"CO(GT)": ["T"]}},
            "correction": {"gain": [1.0, 1.1, 0.9], "bias": [0.0, 0.1, -0.1]},
        },
    ],
}


def _bundle(task: str, head: dict, tmp_path: Path) -> Bundle:
    return head_only_bundle(task, head, tmp_path, n_outputs=3)


def test_the_registry_finds_every_task_folder_in_the_documented_order() -> None:
    folders = sorted(
        p.name for p in (ROOT / "device_sim" / "tasks").iterdir() if (p / "spec.py").is_file()
    )
    assert sorted(task_names()) == folders
    assert [spec_for(name).order for name in task_names()] == sorted(
        spec_for(name).order for name in task_names()
    )
    with pytest.raises(BundleError, match="unknown task"):
        spec_for("no_such_task")


@pytest.mark.parametrize("task", task_names())
def test_every_spec_is_complete(task: str) -> None:
    spec = spec_for(task)
    assert isinstance(spec, TaskSpec) and spec.name == task
    assert isinstance(spec.headline, Headline) and spec.headline.metric
    assert spec.headline.int8_tolerance > 0
    assert spec.title and spec.demo_source
    for hook in (spec.figure, spec.summary, spec.ha_entities, spec.fleet_cells):
        assert callable(hook)
    assert hasattr(spec.head_type, "from_dict") and hasattr(spec.head_type, "to_dict")
    assert EXAMPLE_HEADS.get(task), f"add example heads of {task} to EXAMPLE_HEADS"


# Hand-made fixture heads that the typed head completes with its defaults (VibrationHead writes
# every field, as training does): these round-trip through the typed head, not to their own JSON.
COMPLETED_BY_DEFAULTS = {("vibration", 0), ("vibration", 1)}


@pytest.mark.parametrize(
    ("task", "index"),
    [(task, index) for task, heads in EXAMPLE_HEADS.items() for index in range(len(heads))],
)
def test_a_typed_head_gives_back_exactly_the_json_it_was_read_from(
    task: str, index: int, tmp_path: Path
) -> None:
    head = EXAMPLE_HEADS[task][index]
    spec = spec_for(task)
    typed = spec.head(_bundle(task, head, tmp_path))
    assert isinstance(typed, spec.head_type)
    written = json.loads(json.dumps(typed.to_dict()))
    assert spec.head_type.from_dict(written) == typed
    if (task, index) in COMPLETED_BY_DEFAULTS:
        assert {key: written[key] for key in head} == head
    else:
        assert json.dumps(written) == json.dumps(head)  # same keys, values and key order


@pytest.mark.parametrize("task", task_names())
def test_a_head_with_an_unknown_field_is_refused_with_a_fix(task: str, tmp_path: Path) -> None:
    head = {**EXAMPLE_HEADS[task][-1], "surprise": 1}
    with pytest.raises(BundleError, match="unknown field"):
        spec_for(task).head(_bundle(task, head, tmp_path))


@pytest.mark.parametrize("task", ["kws", "air_quality"])
def test_a_head_missing_its_required_field_is_refused_with_a_fix(task: str, tmp_path) -> None:
    with pytest.raises(BundleError, match="rebuild"):
        spec_for(task).head(_bundle(task, {}, tmp_path))


def test_bundles_built_by_the_test_fixtures_load_their_typed_heads(tmp_path: Path) -> None:
    from bundle_fixtures import tiny_int8_model, write_tiny_bundle

    bundle = write_tiny_bundle(tmp_path / "kws", tiny_int8_model())
    assert spec_for(bundle.task).head(bundle).to_dict() == bundle.head


def _score_output(task: str) -> dict:
    """The task's own ``score`` on a few synthetic rows (cheap: no training, no TFLite)."""
    from training.tasks import task_module

    rng = np.random.default_rng(0)
    module = task_module(task)
    if task == "kws":
        head = EXAMPLE_HEADS[task][1]
        y = np.arange(8) % 4
        return module.score(lambda x: np.eye(4)[y], {"x": np.zeros((8, 2)), "y": y}, head)
    if task == "vibration":
        head = {**VIBRATION_FULL, "error_scale": [1.0, 1.0, 1.0]}
        x = rng.normal(size=(40, 3)).astype(np.float32)
        classes = np.repeat([0, 1], 20)
        x[classes == 1] += 3.0
        evaluation = {"x": x, "class_index": classes, "severity": classes.astype(float)}
        return module.score(lambda v: np.zeros_like(v), evaluation, head)
    if task == "air_quality":
        head = {"targets": aq_targets()}
        y = np.abs(rng.normal(size=(30, 3))) + 0.5
        evaluation = {"x": rng.normal(size=(30, 4)), "reference": y}
        return module.score(lambda v: np.zeros((len(v), 3)), evaluation, head)
    pytest.skip(f"no synthetic evaluation for {task} in this test yet")


@pytest.mark.parametrize("task", task_names())
def test_the_headline_metric_is_in_what_the_task_scores(task: str) -> None:
    pytest.importorskip("tensorflow")
    metrics = _score_output(task)
    assert spec_for(task).headline_of(metrics) is not None
    assert spec_for(task).summary(metrics)


def test_ha_entities_and_fleet_cells_come_from_each_spec(tmp_path: Path) -> None:
    from device_sim.mqtt.ha_discovery import discovery_messages

    bundles = [_bundle(task, EXAMPLE_HEADS[task][-1], tmp_path) for task in task_names()]
    topics = [m.topic for m in discovery_messages("dev-1", bundles)]
    for task in task_names():
        assert any(f"/dev-1/{task}_model/" in topic for topic in topics)
        assert spec_for(task).fleet_cells({}) == {}


def test_runtime_for_builds_each_task_from_its_folder(tmp_path: Path) -> None:
    head = EXAMPLE_HEADS["kws"][1]
    bundle = head_only_bundle("kws", head, tmp_path, feature_config={"sample_rate": 16000})
    assert type(runtime_for(bundle)).__module__ == "device_sim.tasks.kws.runtime"


# -- no task names in shared modules ---------------------------------------------------------------
SCANNED = ("device_sim", "quantize", "firmware_bridge", "training", "tinyfleet", "ops", "pipeline")


def _task_owned(relative: Path, tasks: tuple[str, ...]) -> bool:
    """In a ``<task>/`` folder, or a file whose name starts with a task's name."""
    if any(part in tasks for part in relative.parts[:-1]):
        return True
    return any(relative.name.startswith(task) for task in tasks)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _task_mentions(path: Path, tasks: tuple[str, ...]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and node.value.startswith(tasks):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: literal {node.value!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{name}" for name in names]
            for name in names:
                if any(part.startswith(tasks) for part in name.split(".")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {name}")
    return found


def test_shared_modules_never_name_a_task() -> None:
    tasks = task_names()
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if _task_owned(relative, tasks):
                continue
            found += _task_mentions(path, tasks)
    assert not found, "shared modules name tasks (ask the task spec instead):\n" + "\n".join(found)
