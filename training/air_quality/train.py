"""The air-quality recipe: time split → baselines → curve prior + pruned dense net → float metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.sources.uci_air_csv import AirQualityTable
from device_sim.tasks.air_quality import DEFAULT_BANDS, CurvePrior
from training.air_quality.baselines import fit_baselines
from training.air_quality.data import (
    choose_inputs,
    describe_split,
    load_table,
    target_head,
    time_split,
)
from training.air_quality.distill import with_teacher_windows
from training.air_quality.evaluate import score
from training.air_quality.explain import permutation_importance, top_inputs
from training.air_quality.loss import log_target_mae, recency_weights
from training.air_quality.presets import (
    DISTILL_SWAP,
    EXPLAIN_TOP,
    PRESETS,
    RECORDED_DATA_DROP,
    REPRESENTATIVE_WINDOWS,
    TRAIN_FRACTION,
)
from training.air_quality.prior import blend_residual, fit_curve_prior
from training.air_quality.window_mlp import window_mlp
from training.stage import TrainedModel, TrainOptions

# The learning rate decays to this fraction of its start (training.schedule.cosine_decay).
# Measured on the simulator: without the decay the MAE of every target is 5-15 % worse.
LEARNING_RATE_FLOOR = 0.02


def train(
    options: TrainOptions,
    *,
    table: AirQualityTable | None = None,
    split_rows: tuple[int, int] | None = None,
    baseline_cache: Path | None = None,
) -> TrainedModel:
    """Dataset → time split → windows → baselines → curve prior + pruned dense net → float metrics.

    ``split_rows = (train_end, test_end)`` trains on rows before ``train_end`` and evaluates the
    windows ending in ``[train_end, test_end)`` (the forward-chaining protocol of
    :mod:`training.air_quality.protocol`); by default the first ``TRAIN_FRACTION`` of the rows
    train and the rest evaluate. ``table`` skips loading ``options.data`` again;
    ``baseline_cache`` is a folder where the baselines' predictions are kept between runs.
    """
    from training.fit import fit_plan, fit_pruned
    from training.keras_env import seed_everything
    from training.schedule import cosine_callback

    preset = PRESETS[options.preset]
    knob = options.knob
    seed_everything(options.seed)
    table = table if table is not None else load_table(options)
    dropped = knob("drop_inputs", () if options.data is None else RECORDED_DATA_DROP)
    inputs, transforms = choose_inputs(table, tuple(dropped))
    split_row, test_end = split_rows or (int(len(table) * TRAIN_FRACTION), len(table))
    window_rows = int(knob("window_rows", preset["window_rows"]))
    config = AirQualityWindowConfig.fitted(
        inputs,
        transforms,
        table.matrix(inputs)[:split_row],
        window_rows=window_rows,
        row_seconds=table.row_seconds,
        clip_linear=bool(knob("clip_weather", preset["clip_weather"])),
        clip_quantile=float(knob("clip_weather_quantile", 0.0)),
    )
    parts = time_split(table, config, split_row, test_end)
    targets = parts.targets
    x_train, y_train, x_test, y_test = parts.x_train, parts.y_train, parts.x_test, parts.y_test

    head: dict[str, Any] = {
        "targets": target_head(targets, y_train),
        "output": "per target: z = prior(features) + residual_scale * output; value = "
        "exp(z * log_std + log_mean) - offset, clipped at 0",
        "bands": DEFAULT_BANDS,
    }
    n_knots = int(knob("prior_knots", preset["prior_knots"]))
    if n_knots >= 0:
        head["prior"] = fit_curve_prior(
            x_train,
            y_train,
            head,
            config,
            n_knots,
            inputs_per_target=int(knob("prior_inputs", preset["prior_inputs"])),
        ).to_dict()
        prior_z = CurvePrior.from_dict(head["prior"])(x_train)
    else:  # no prior: the network alone, as before issue #14
        prior_z = np.zeros_like(y_train)

    started = time.perf_counter()
    baselines = fit_baselines(
        table, targets, parts.train_end_rows, parts.test_end_rows, options.seed, baseline_cache
    )
    baseline_seconds = time.perf_counter() - started

    x_fit = x_train
    y_fit = np.concatenate([y_train, prior_z], axis=1)
    distill_ratio = float(knob("gbm_distill", preset["gbm_distill"]))
    if distill_ratio > 0:
        x_fit, y_fit = with_teacher_windows(
            x_train,
            y_train,
            y_fit,
            head,
            config,
            distill_ratio,
            options.seed,
            swap=float(knob("distill_swap", DISTILL_SWAP)),
        )

    model = window_mlp(
        x_train.shape[1],
        len(targets),
        width=int(knob("width", preset["width"])),
        depth=int(knob("depth", preset["depth"])),
        input_noise=float(knob("input_noise", preset["input_noise"])),
    )
    weights = recency_weights(
        table, parts.train_end_rows, float(knob("recent_half_life_days", 0.0)), len(x_fit)
    )
    sparsity = float(knob("sparsity", preset["sparsity"]))
    plan = fit_plan(options, preset)
    fitted = fit_pruned(
        model,
        x_fit,
        y_fit.astype(np.float32),
        plan,
        loss=log_target_mae(head),
        sample_weight=weights,
        extra_callbacks=[cosine_callback(plan.learning_rate, plan.epochs, LEARNING_RATE_FLOOR)],
        teacher=options.teacher,
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.model.predict(x, verbose=0, batch_size=1024))

    split = describe_split(table, split_row, parts)
    evaluation = {
        "x": x_test,
        "reference": y_test,
        **{f"baseline_{name}": pred for name, pred in baselines.predictions.items()},
        "end_row": parts.test_end_rows,
        "split": np.array(json.dumps(split)),
        # the share of windows a device on this data could not infer (a missing input): the
        # reference `tinyfleet monitor` compares a node's invalid windows with
        "invalid_rate": np.array(parts.skipped / max(1, len(table) - config.window_rows + 1)),
    }
    blend = knob("residual_blend", 1.0)
    if np.any(np.asarray(blend, dtype=float) != 1.0) and head.get("prior"):
        head["prior"] = blend_residual(head["prior"], blend)  # z = prior + blend × residual
    metrics_float = score(predict, evaluation, head)
    importance = permutation_importance(predict, x_test, y_test, head, config, options.seed)
    head["explain"] = {
        "in_payload": True,
        "top": EXPLAIN_TOP,
        "per_target": top_inputs(importance, head),
        "method": "global permutation importance on the evaluation rows (not per window)",
    }
    rng = np.random.default_rng(options.seed)
    representative = x_train[rng.permutation(len(x_train))[:REPRESENTATIVE_WINDOWS]]
    return TrainedModel(
        task="air_quality",
        name="air_quality_mlp",
        model=fitted.model,
        feature_config=config,
        head=head,
        representative=representative,
        evaluation=evaluation,
        metrics_float=metrics_float,
        sparsity=fitted.sparsity,
        provenance={
            "data": table.report.source,
            "seed": options.seed,
            "preset": options.preset,
            "fit_seconds": round(fitted.seconds, 1),
            "history": fitted.history,
            "baseline_seconds": round(baseline_seconds, 1),
            "hyperparameters": {
                "window_rows": window_rows,
                "width": int(knob("width", preset["width"])),
                "depth": int(knob("depth", preset["depth"])),
                "epochs": plan.epochs,
                "learning_rate": plan.learning_rate,
                "sparsity": sparsity,
            },
        },
        extra={
            "column_map": [list(pair) for pair in options.column_map],
            "data": table.report.to_dict(),
            "split": split,
            "baselines": {
                "models": "sklearn defaults: LinearRegression, GradientBoostingRegressor, "
                "HistGradientBoostingRegressor (random_state = seed)",
                "features": "hour: the hour's raw MOX/T/RH/AH readings; lagged: the same at t, "
                "t-1 h, t-2 h plus hour of day; fitted on the training rows, scored on the "
                "model's evaluation rows",
            },
            "explanation": {
                "method": "permutation importance: increase of MAE (target units) when one input's "
                "whole window is shuffled across evaluation rows; float model",
                "per_target": importance,
            },
        },
    )
