"""One model from data to an exported bundle: train → prune → int8 → bundle → firmware export.

The canonical order of the stages, written once: the ``build`` command, the demo, ``tune``'s trials,
tests and benchmarks all call it instead of chaining the stages themselves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from device_sim.bundle import Bundle, load_bundle


def train_and_quantize(
    task: str,
    options: Any,
    out: Path,
    *,
    qat: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> Bundle:
    """Train the task's float model, save it in ``out`` and write the int8 bundle beside it.

    ``options`` is a :class:`training.stage.TrainOptions`; ``provenance`` adds records to the
    bundle's provenance (a tune trial's study and knobs). Train time and preset are recorded.
    """
    from quantize.stage import quantize_trained
    from training.tasks import task_module

    started = time.perf_counter()
    trained = task_module(task).train(options)
    trained.provenance.update(provenance or {})
    trained.provenance.setdefault("train_seconds", round(time.perf_counter() - started, 1))
    trained.provenance.setdefault("preset", options.preset)
    trained.save(out)
    return quantize_trained(trained, out, qat=qat)


def build(
    task: str, options: Any, out: Path, *, export: bool = True, target: str = "c", qat: bool = False
) -> Bundle:
    """train → prune → int8 → bundle → firmware export (``out/firmware``), as one call."""
    bundle = train_and_quantize(task, options, out, qat=qat)
    if export:
        from firmware_bridge.export import export_firmware

        export_firmware(bundle, out / "firmware", target=target)
        bundle = load_bundle(out)
    return bundle
