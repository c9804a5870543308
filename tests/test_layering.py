"""Packages only import downwards: the arrows of docs/architecture.md, read from the source.

Every ``import`` counts, including the lazy ones inside functions: a lazy import is still an arrow,
it only fails later (on a Pi without TensorFlow, in the middle of a run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# rank: a package may import packages of a lower rank, and itself
RANKS = {
    "device_sim": 0,  # the device runtime: bundle, front ends, interpreter, task runtimes, publisher
    "training": 1,  # stages in pipeline order
    "quantize": 2,
    "firmware_bridge": 3,
    "pipeline": 4,  # orchestrators: build, tune, distill, report
    "ops": 4,  # operator tools, beside the orchestrators
    "tinyfleet": 5,  # the CLI on top
}
# beside, not above: the operator's tools need only what a device runs
ONLY = {"ops": {"device_sim", "ops"}}
# the device runtime installs without TensorFlow (`pip install .[device]` on a Pi)
NO_TENSORFLOW = {"device_sim", "ops"}
TENSORFLOW = {"tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in RANKS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append((package, path))
    return found


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _violations() -> list[str]:
    problems = []
    for package, path in _modules():
        where = path.relative_to(ROOT)
        for root in _imported_roots(path):
            if package in NO_TENSORFLOW and root in TENSORFLOW:
                problems.append(f"{where}: imports {root} (the device runtime runs without it)")
            if root not in RANKS or root == package:
                continue
            allowed = ONLY.get(package)
            if allowed is not None and root not in allowed:
                problems.append(f"{where}: {package} may import only {sorted(allowed)}, not {root}")
            elif RANKS[root] >= RANKS[package]:
                problems.append(
                    f"{where}: {package} (layer {RANKS[package]}) imports {root} "
                    f"(layer {RANKS[root]}): arrows point down"
                )
    return problems


def test_every_package_imports_only_lower_layers():
    assert _violations() == []


def _task_folder(relative: Path, tasks: tuple[str, ...]) -> str | None:
    return next((part for part in relative.parts[:-1] if part in tasks), None)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_a_task_folder_never_imports_another_task():
    """Tasks are folders side by side: removing one, or adding a fourth, touches no other."""
    from device_sim.tasks import task_names

    tasks = task_names()
    problems = []
    for _, path in _modules():
        relative = path.relative_to(ROOT)
        own = _task_folder(relative, tasks)
        if own is None:
            continue
        for name in _imported_modules(path):
            other = _task_folder(Path(*name.split(".")) / "x", tasks)
            if other is not None and other != own:
                problems.append(f"{relative}: the {own} task imports {name}")
    assert problems == []


def test_the_layering_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a device module that reaches into training is reported."""
    fake = tmp_path / "device_sim"
    fake.mkdir()
    (fake / "leak.py").write_text("def f():\n    from training.fit import fit_pruned\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.RANKS", {"device_sim": 0, "training": 1})
    assert _violations() == [
        "device_sim/leak.py: device_sim (layer 0) imports training (layer 1): arrows point down"
    ]


@pytest.mark.parametrize("package", sorted(RANKS))
def test_package_exists(package):
    assert (ROOT / package / "__init__.py").is_file()
