"""The task registry: one package per task (``training/<task>/``), each exposing the same functions.

Each task package keeps one module per stage (data, model, train, evaluate …) and re-exports the
task API below from its ``__init__``, so ``task_module(name)`` finds it by name.

A task module provides::

    def train(options: TrainOptions) -> TrainedModel
        # dataset → Keras model → fit + prune → stripped float model, with float metrics computed
        # by ``score`` on the held-out evaluation set.
    def score(predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray],
              head: dict) -> dict
        # the task's metrics for any predictor (Keras float or TFLite int8) on the same rows;
        # the first key is the headline metric (accuracy, auc, mae …).
    def evaluate(bundle: Bundle, data: Path | None, options: TrainOptions) -> dict
        # ``tinyfleet evaluate``: the int8 bundle on a dataset folder/file, plus plots beside it.
    REPORT_TITLE: str
    def report_chart(bundle: Bundle, evaluation: dict[str, np.ndarray], outputs: np.ndarray)
            -> TaskChart
        # the task's section of ``tinyfleet report`` (``report_chart.py``): charts of the int8
        # ``outputs`` on the held-out ``evaluation`` rows, as data (training/report_charts.py).
    def report_importance(bundle, evaluation, outputs) -> Importance | None   # optional
        # a (title, names, values) chart for the report's explanation section.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from device_sim.errors import ConfigError
from device_sim.tasks import task_names


def task_module(name: str) -> ModuleType:
    """Import ``training.<name>`` for a known task name."""
    if name not in task_names():
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(task_names())}")
    return importlib.import_module(f"training.{name}")
