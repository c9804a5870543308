"""Air-quality soft sensor: estimate CO, NO2 and benzene from five MOX sensors, weather and time.

Data: the UCI Air Quality CSV (or a generic CSV, ``--column SOURCE=CANONICAL``) via
:mod:`device_sim.sources.uci_air_csv`, or the seeded simulator when no ``--data`` is given.

* Inputs per hour: log responses of ``PT08.S1..S5``, ``T``, ``RH``, ``AH`` (``T`` and ``AH`` left
  out on recorded data: :data:`RECORDED_DATA_DROP`), and the clock's hour of day (sin/cos) and
  weekend flag; a window of the past ``window_rows`` hours, flattened, normalised with
  statistics of the training part only (:mod:`device_sim.features.air_quality`).
* Split by time: windows ending in the first ``train_fraction`` of the rows train, the rest evaluate;
  nothing is shuffled across the split.
* Gaps: a window with any missing input is skipped (never imputed) — on the device too. Targets may
  be missing per row: the loss is masked (absolute error in target units, scaled per target,
  over present values only), and each target's metrics use only rows where its reference exists.
* Model: a small dense net over the window whose outputs are log-space z-scores of the targets
  (see :mod:`device_sim.tasks.air_quality`), trained with magnitude pruning and a cosine learning
  rate decay.
* Baselines on the very same rows and features: ordinary least squares and sklearn's
  HistGradientBoostingRegressor (absolute-error loss: the metric is MAE). Their predictions are stored
  with the evaluation set, so float and int8 are compared with identical baseline figures.
* Explanation: permutation importance per input (all window positions of an input shuffled together)
  on the evaluation rows, as the increase in each target's MAE.

One module per stage: :mod:`.data` (table, inputs, windows, time split), :mod:`.prior` (curve
prior), :mod:`.window_mlp` (the model), :mod:`.loss`, :mod:`.distill` (gradient-boosting teacher),
:mod:`.train` (the recipe), :mod:`.baselines`, :mod:`.explain`, :mod:`.evaluate`, :mod:`.protocol`
(forward-chaining evaluation).
"""

from training.air_quality.data import (
    choose_inputs,
    load_table,
    log_z,
    target_head,
    time_split,
    windowed,
)
from training.air_quality.evaluate import evaluate, score
from training.air_quality.explain import permutation_importance
from training.air_quality.loss import log_target_mae, recency_weights
from training.air_quality.presets import (
    HEADLINE_METRIC,
    INPUT_TRANSFORMS,
    PRESETS,
    RECORDED_DATA_DROP,
    SEARCH_SPACE,
    TARGETS,
    TRAIN_FRACTION,
)
from training.air_quality.prior import current_row_inputs, fit_curve_prior
from training.air_quality.report_chart import REPORT_TITLE, report_chart
from training.air_quality.train import train
from training.air_quality.window_mlp import window_mlp

__all__ = [
    "HEADLINE_METRIC",
    "INPUT_TRANSFORMS",
    "PRESETS",
    "RECORDED_DATA_DROP",
    "REPORT_TITLE",
    "SEARCH_SPACE",
    "TARGETS",
    "TRAIN_FRACTION",
    "choose_inputs",
    "current_row_inputs",
    "evaluate",
    "fit_curve_prior",
    "load_table",
    "log_target_mae",
    "log_z",
    "permutation_importance",
    "recency_weights",
    "report_chart",
    "score",
    "target_head",
    "time_split",
    "train",
    "window_mlp",
    "windowed",
]
