"""Forward-chaining evaluation for the air-quality soft sensor: the dev protocol every change answers to.

A sensor node is calibrated on the months it has seen and used on the months that follow, so the
honest question is "trained on months 1..k, how good is it in month k+1?". :func:`month_folds` cuts a
table at calendar-month boundaries (the file's own clock): fold ``k`` trains on every row before
month ``k+1`` and scores month ``k+1`` only. Nothing from a scored month (statistics, baselines,
calibration windows) reaches its model. Results are reported per target as the mean over folds and
the worst fold, beside the baselines of :mod:`training.air_quality.baselines` on identical rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from device_sim.errors import DataError
from device_sim.sources.uci_air_csv import AirQualityTable


@dataclass(frozen=True)
class MonthFold:
    """Train on rows ``[0, train_end)``, score rows ``[train_end, test_end)`` (one month)."""

    label: str  # the scored month, "YYYY-MM"
    train_end: int
    test_end: int


def month_of_rows(table: AirQualityTable) -> list[str]:
    """``"YYYY-MM"`` of every row's timestamp (the file's own clock)."""
    if table.timestamps is None:
        raise DataError(
            f"{table.report.source or 'the data'} has no timestamps; forward-chaining folds are "
            "cut at month boundaries, so give a Date/Time or timestamp column"
        )
    return [
        datetime.fromtimestamp(int(s), tz=timezone.utc).strftime("%Y-%m") for s in table.timestamps
    ]


def month_folds(table: AirQualityTable, min_train_months: int = 3) -> list[MonthFold]:
    """One fold per month after the first ``min_train_months`` (a partial first month counts)."""
    months = month_of_rows(table)
    starts = [0] + [i for i in range(1, len(months)) if months[i] != months[i - 1]]
    ends = starts[1:] + [len(months)]
    folds = [
        MonthFold(label=months[start], train_end=start, test_end=end)
        for k, (start, end) in enumerate(zip(starts, ends, strict=True))
        if k >= min_train_months
    ]
    if not folds:
        raise DataError(
            f"{table.report.source or 'the data'} spans {len(starts)} month(s); forward chaining "
            f"needs more than {min_train_months}"
        )
    return folds


def summarize(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Mean and worst (largest) of one MAE over folds, ignoring folds without a value."""
    values = np.array([v for v in per_fold if v is not None and np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "worst": float("nan")}
    return {"mean": float(values.mean()), "worst": float(values.max())}
