"""Matplotlib charts for the bundle report and the tune Pareto front, each returned as PNG bytes.

Every function takes plain numbers (no bundle, no model), draws one figure with the Agg backend
(no display needed, works headless on CI and on a Raspberry Pi) and closes it, so a report of many
charts does not accumulate open figures.

A task's own part of the report (``training/<task>/report_chart.py``) returns a :class:`TaskChart`:
data, not HTML, which :mod:`pipeline.report` renders (training never imports the orchestrators).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_DPI = 96
_COLORS = {"float": "#4c72b0", "int8": "#dd8452", "bad": "#c44e52", "ok": "#55a868"}


@dataclass(frozen=True)
class TaskChart:
    """A task's section of the bundle report, rendered in this order: images, notes, table.

    ``images`` are (PNG bytes, alt text); ``notes`` short sentences (what was recomputed, or why a
    chart is missing); ``table`` is (rows, header) or None.
    """

    images: tuple[tuple[bytes, str], ...] = ()
    notes: tuple[str, ...] = ()
    table: tuple[list[tuple[Any, ...]], tuple[str, ...]] | None = None


# (where, names, values): one importance chart of the report's explanation section.
Importance = tuple[str, list[str], list[float]]


def label_array(evaluation: Mapping[str, np.ndarray], n: int, names: tuple[str, ...]) -> Any:
    """The first of ``names`` in ``evaluation`` holding one value per row (``n`` rows), or None."""
    for name in names:
        values = evaluation.get(name)
        if values is not None and np.ndim(values) and len(values) == n:
            return np.asarray(values)
    return None


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=_DPI)
    plt.close(fig)
    return buffer.getvalue()


def pareto_chart(
    records: Sequence[Mapping[str, Any]],
    front: Sequence[Mapping[str, Any]],
    budget: Any,
    metric: str | None,
    direction: str,
) -> bytes:
    """Int8 metric vs flash (KB) of every trial; feasible ones filled, the front joined by a line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if metric:
        for feasible, style in ((False, "x"), (True, "o")):
            rows = [r for r in records if r["feasible"] is feasible]
            if rows:
                ax.scatter(
                    [r["flash_bytes"] / 1024 for r in rows],
                    [r[metric] for r in rows],
                    marker=style,
                    color=_COLORS["ok"] if feasible else _COLORS["bad"],
                    label="within budget" if feasible else "over budget",
                )
        if front:
            ax.plot(
                [r["flash_bytes"] / 1024 for r in front],
                [r[metric] for r in front],
                "-",
                color="black",
                lw=1,
                label="Pareto front",
            )
        for r in records:
            if r is not None and (r in front or r.get("preset_defaults")):
                label = f"#{r['trial']}" + (" preset defaults" if r.get("preset_defaults") else "")
                ax.annotate(label, (r["flash_bytes"] / 1024, r[metric]), fontsize=7)
    ax.axvline(budget.flash_bytes / 1024, color="grey", ls="--", label="flash budget")
    ax.set_xlabel("flash (KB): int8 model + front-end tables")
    better = "higher" if direction == "maximize" else "lower"
    ax.set_ylabel(f"int8 {metric or 'metric'} ({better} is better)")
    ax.set_title(f"{len(records)} trials; arena budget {budget.arena_bytes / 1024:.0f} KB")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


LEARNING_RATE_KEYS = ("lr", "learning_rate")


def training_curves(history: Mapping[str, Sequence[float]]) -> bytes:
    """Loss, other metrics and the learning rate per epoch, each on its own axis.

    Train curves are solid, validation dashed. The learning rate gets its own (log) axis: drawn
    beside accuracy it would be a flat line at zero and squash the curve that matters.
    """
    rates = {k: v for k, v in history.items() if k in LEARNING_RATE_KEYS}
    losses = {k: v for k, v in history.items() if k.endswith("loss") and k not in rates}
    others = {k: v for k, v in history.items() if k not in losses and k not in rates}
    panels = [(series, label) for series, label in ((losses, "loss"), (others, "metric")) if series]
    if rates:
        panels.append((rates, "learning rate"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1, 3.2), squeeze=False)
    for ax, (series, label) in zip(axes[0], panels, strict=True):
        for name, values in series.items():
            ax.plot(
                range(1, len(values) + 1),
                values,
                "--" if name.startswith("val_") else "-",
                label=name,
            )
        if label == "learning rate" and all(v > 0 for vals in series.values() for v in vals):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def target_errors(
    names: Sequence[str],
    float_mae: Sequence[float],
    int8_mae: Sequence[float],
    baseline_mae: Sequence[float | None],
) -> bytes:
    """Per-target MAE of the float and int8 model as a share of the better baseline's MAE.

    Targets have different units, so each is divided by its best baseline: below the line at 1
    the model beats a linear/gradient-boosting model trained on the same rows.
    """
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(names) + 2), 3.2))
    for offset, (label, values) in zip(
        (-0.2, 0.2), (("float", float_mae), ("int8", int8_mae)), strict=True
    ):
        ratio = [v / b if b else np.nan for v, b in zip(values, baseline_mae, strict=True)]
        bars = ax.bar(x + offset, ratio, 0.4, label=label, color=_COLORS[label])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color=_COLORS["bad"], ls="--", label="better baseline")
    ax.set_xticks(x, names)
    ax.set_ylabel("MAE ÷ better baseline's MAE")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def metric_bars(float_metrics: Mapping[str, float], int8_metrics: Mapping[str, float]) -> bytes:
    """Float vs int8 value of every numeric metric both report, side by side."""
    names = [
        k
        for k, v in int8_metrics.items()
        if isinstance(v, (int, float)) and isinstance(float_metrics.get(k), (int, float))
    ]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names) + 2), 3.2))
    x = np.arange(len(names))
    for offset, (label, values) in zip(
        (-0.2, 0.2), (("float", float_metrics), ("int8", int8_metrics)), strict=True
    ):
        bars = ax.bar(
            x + offset, [values[n] for n in names], 0.4, label=label, color=_COLORS[label]
        )
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def confusion_matrix(matrix: np.ndarray, labels: Sequence[str]) -> bytes:
    """Counts of (reference row, predicted column), with each cell's count printed."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                int(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    ax.set_xticks(range(n), labels, rotation=60, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted (int8)")
    ax.set_ylabel("reference")
    return _png(fig)


def roc_and_histogram(
    scores: np.ndarray, is_anomaly: np.ndarray, threshold: float | None, auc: float | None
) -> bytes:
    """ROC curve of the anomaly score (left) and the score histograms per class (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    fpr, tpr = roc_points(scores, is_anomaly)
    left.plot(fpr, tpr, color=_COLORS["int8"], label=f"int8 (AUC {auc:.3f})" if auc else "int8")
    left.plot([0, 1], [0, 1], ":", color="grey")
    left.set_xlabel("false-alarm rate")
    left.set_ylabel("detection rate")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    bins = np.histogram_bin_edges(scores, bins=40)
    right.hist(scores[~is_anomaly], bins=bins, alpha=0.6, label="normal", color=_COLORS["ok"])
    right.hist(scores[is_anomaly], bins=bins, alpha=0.6, label="anomalous", color=_COLORS["bad"])
    if threshold is not None:
        right.axvline(threshold, color="black", ls="--", label="threshold")
    right.set_xlabel("anomaly score")
    right.set_ylabel("windows")
    right.legend(fontsize=8)
    return _png(fig)


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score threshold."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    positive = np.asarray(positive, dtype=bool)[order]
    # one point per distinct threshold, so tied scores count half (the trapezoid's diagonal)
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.concatenate([[0], np.cumsum(positive)[last_of_tie]])
    fps = np.concatenate([[0], np.cumsum(~positive)[last_of_tie]])
    return fps / max(1, fps[-1]), tps / max(1, tps[-1])


def predicted_vs_reference(
    reference: np.ndarray, predicted: np.ndarray, names: Sequence[str], units: Sequence[str]
) -> bytes:
    """One panel per target: reference and int8 prediction over the evaluation windows (time)."""
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64).T).T
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64).T).T
    n = reference.shape[1]
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.9 * n + 0.4), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(reference[:, i], color="black", lw=1, label="reference")
        ax.plot(predicted[:, i], color=_COLORS["int8"], lw=1, label="int8 prediction")
        ax.set_ylabel(f"{names[i]}\n({units[i]})" if i < len(units) else names[i], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("evaluation window (time order)")
    return _png(fig)


def layer_bars(names: Sequence[str], macs: Sequence[float], params: Sequence[float]) -> bytes:
    """Per-layer MACs and parameters, horizontal bars (layers top to bottom in model order)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.9 + 0.3 * len(names)), sharey=True)
    y = np.arange(len(names))
    left.barh(y, macs, color=_COLORS["float"])
    left.set_yticks(y, names, fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("MACs per inference")
    right.barh(y, params, color=_COLORS["int8"])
    right.set_xlabel("parameters")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def budget_bars(
    flash_bytes: float, ram_bytes: float | None, targets: Sequence[Mapping[str, Any]]
) -> bytes:
    """The model's flash and arena as a share of each target MCU's flash and RAM (100% = full)."""
    names = [t["name"] for t in targets]
    flash_share = [100 * flash_bytes / t["flash_bytes"] for t in targets]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.55 * len(names)))
    bars = ax.barh(
        y - 0.2, flash_share, 0.4, label="flash (model + front end)", color=_COLORS["float"]
    )
    ax.bar_label(bars, fmt="%.1f%%", fontsize=7)
    if ram_bytes is not None:
        ram_share = [100 * ram_bytes / t["ram_bytes"] for t in targets]
        bars = ax.barh(
            y + 0.2, ram_share, 0.4, label="RAM (arena + front end)", color=_COLORS["int8"]
        )
        ax.bar_label(bars, fmt="%.1f%%", fontsize=7)
    ax.axvline(100, color=_COLORS["bad"], ls="--")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of the MCU's total")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def importance_bars(names: Sequence[str], values: Sequence[float], title: str) -> bytes:
    """Importance per band/input, largest first."""
    order = np.argsort(values)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.28 * len(names)))
    ax.barh(np.arange(len(names)), np.asarray(values)[order], color=_COLORS["float"])
    ax.set_yticks(np.arange(len(names)), [names[i] for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
