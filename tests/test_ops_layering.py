"""``ops`` (operator tools) imports the device runtime only, and the runtime never imports ``ops``.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot
hide an arrow that runs the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {
    "device_sim",
    "ops",
    "training",
    "quantize",
    "firmware_bridge",
    "pipeline",
    "tinyfleet",
}
# package -> first-party packages it must not import (the whole layering test is the lead's; this
# file keeps only the arrows between the runtime and the operator tools)
MUST_NOT_IMPORT = {"ops": FIRST_PARTY - {"ops", "device_sim"}, "device_sim": {"ops"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & FIRST_PARTY


@pytest.mark.parametrize("package", sorted(MUST_NOT_IMPORT))
def test_ops_imports_only_the_runtime_and_the_runtime_never_imports_ops(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & MUST_NOT_IMPORT[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert not {file: names for file, names in wrong.items() if names}
