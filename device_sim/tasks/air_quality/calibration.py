"""Field calibration of an air-quality bundle: sensor baselines and a per-target correction.

MOX sensors drift (ageing, poisoning, seasons), so a node calibrated on last summer's months reads
off in winter. Retraining needs the training data and TensorFlow; a user with a few days of
co-located reference measurements (a regulatory station next door, a rented analyser) only needs to
re-fit what drift changes: first each gas sensor's baseline (an ln-offset of its normalisation
mean in the front end: an aged sensor reads ``k×`` its old response), then per target
``z' = gain · z + bias`` on the model's log-concentration z (before
:class:`~device_sim.tasks.air_quality.OutputDecoder` turns it into µg/m³). Each is kept only when
it lowers the error on the reference hours by 5 %. The int8 model and the curve prior stay byte for
byte; the bundle gets the shifted front-end means, ``head.correction`` and a new version, so the
existing rollout delivers it. Runs without TensorFlow (on a Pi, too).

With few hours the fit is shrunk towards no correction (gain 1, bias 0) by ``prior_hours``
pseudo-observations: one day of references mostly moves the bias, a week also the gain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle, default_version, write_bundle
from device_sim.errors import ConfigError, DataError
from device_sim.features import feature_config_from_dict
from device_sim.features.air_quality import sliding_windows
from device_sim.sources.uci_air_csv import AirQualityTable
from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.air_quality.runtime import OutputDecoder

log = logging.getLogger(__name__)

TASK = "air_quality"  # the only task whose bundles this calibrates

MIN_REFERENCE_HOURS = 6  # per target; fewer and that target keeps its current correction
PRIOR_HOURS = 24.0
MIN_IMPROVEMENT = 0.05  # a target's correction is kept only if it cuts its MAE by 5 % or more


@dataclass(frozen=True)
class ModelOnTable:
    """The bundle's uncorrected z, its decoder and the references on every complete window."""

    z: np.ndarray  # (n_windows, n_targets)
    reference: np.ndarray  # (n_windows, n_targets), NaN where the file has no reference
    end_row: np.ndarray  # row index of each window's newest row
    decoder: OutputDecoder
    windows: np.ndarray  # (n_windows, window_rows, n_inputs) raw readings
    config: Any  # the bundle's AirQualityWindowConfig
    model: Any  # the bundle's Int8Model

    def with_sensor_offsets(self, offsets: dict[str, float]) -> ModelOnTable:
        """The same windows through a front end whose ``log`` inputs' means moved by ``offsets``."""
        config = shifted_config(self.config, offsets)
        features = config.build().batch(self.windows)
        z = self.decoder.z(self.model.predict_batch(features), features)
        return dataclasses.replace(self, z=z, config=config)


def run_model(bundle: Bundle, table: AirQualityTable) -> ModelOnTable:
    """Front end + int8 model (as on the device) over every window with complete inputs."""
    from device_sim.interpreter import Int8Model

    if bundle.task != TASK:
        raise ConfigError(f"{bundle.directory} is a {bundle.task} bundle; calibrate {TASK}")
    config = feature_config_from_dict(bundle.feature_config)
    missing = [name for name in config.inputs if not table.has(name)]
    if missing:
        raise DataError(
            f"{table.report.source} lacks the model's input(s) {missing}; map them with --column"
        )
    windows = sliding_windows(table.matrix(config.inputs), config.window_rows)
    complete = np.all(np.isfinite(windows), axis=(1, 2))
    end_row = np.arange(config.window_rows - 1, len(table))[complete]
    if not len(end_row):
        raise DataError(f"{table.report.source}: no window of {config.window_rows} complete hours")
    features = config.build().batch(windows[complete])
    model = Int8Model.from_bundle(bundle)
    outputs = model.predict_batch(features)
    head = AirQualityHead.from_dict(bundle.head)
    decoder = OutputDecoder.from_head(head.with_correction(None))
    names = head.names
    reference = np.full((len(end_row), len(names)), np.nan)
    for j, name in enumerate(names):
        if table.has(name):
            reference[:, j] = table.column(name)[end_row]
    return ModelOnTable(
        decoder.z(outputs, features),
        reference,
        end_row,
        decoder,
        np.array(windows[complete]),
        config,
        model,
    )


def shifted_config(config, offsets: dict[str, float]):
    """``config`` with ``mean`` of each named ``log`` input raised by its offset (ln units)."""
    mean = list(config.mean)
    for name, offset in offsets.items():
        mean[config.inputs.index(name)] += float(offset)
    return dataclasses.replace(config, mean=tuple(mean))


def fit_sensor_offsets(
    run: ModelOnTable, rows: np.ndarray, prior_hours: float = PRIOR_HOURS
) -> dict[str, float]:
    """Per gas sensor, the ln-offset of its baseline that best explains the reference hours.

    A MOX sensor that ages reads ``k×`` its old response: ``ln(x)`` moves by ``ln k``, which is
    undone by moving that input's normalisation mean by the same amount — in the front end, so
    the device, the C port and the int8 model all stay as they are. Minimises the mean over targets
    of MAE / mean reference on ``rows`` (Powell, from 0), plus a ridge of ``prior_hours``
    pseudo-hours against offsets beyond ~10 %.
    """
    from scipy.optimize import minimize

    names = [n for n, t in zip(run.config.inputs, run.config.transforms, strict=True) if t == "log"]
    present = np.isfinite(run.reference[rows])
    usable = [
        j for j in range(run.reference.shape[1]) if present[:, j].sum() >= MIN_REFERENCE_HOURS
    ]
    if not names or not usable:
        return {}
    scale = [float(np.mean(run.reference[rows][present[:, j], j])) for j in usable]
    windows = run.windows[rows]
    n_hours = float(present.any(axis=1).sum())

    def loss(offsets: np.ndarray) -> float:
        config = shifted_config(run.config, dict(zip(names, offsets, strict=True)))
        features = config.build().batch(windows)
        values = run.decoder(run.model.predict_batch(features), features)
        error = 0.0
        for j, s in zip(usable, scale, strict=True):
            ok = present[:, j]
            error += float(np.mean(np.abs(values[ok, j] - run.reference[rows][ok, j]))) / s
        return (
            error / len(usable) + prior_hours / n_hours * float(np.sum((offsets / 0.1) ** 2)) * 0.01
        )

    result = minimize(loss, np.zeros(len(names)), method="Powell", options={"xtol": 1e-3})
    return {name: round(float(v), 5) for name, v in zip(names, result.x, strict=True)}


def fit_correction(
    z: np.ndarray, z_reference: np.ndarray, prior_hours: float = PRIOR_HOURS
) -> tuple[float, float]:
    """Gain and bias of ``z_reference ≈ gain·z + bias``, shrunk towards (1, 0).

    The residual ``z_reference − z`` is fitted as ``slope·(z − mean) + shift``; each of the two is
    a ridge with ``prior_hours`` pseudo-observations of "no change" (the slope's scaled by the
    variance of ``z``), so they are independent and have closed forms.
    """
    residual = z_reference - z
    mean = float(np.mean(z))
    centred = z - mean
    slope = float(np.sum(centred * residual)) / (
        float(np.sum(centred**2)) + prior_hours * (float(np.var(z)) + 1e-6)
    )
    shift = float(np.sum(residual)) / (len(z) + prior_hours)
    return 1.0 + slope, shift - slope * mean


def correction_for(
    run: ModelOnTable, rows: np.ndarray | None = None, prior_hours: float = PRIOR_HOURS
) -> dict[str, Any]:
    """The ``head.correction`` fitted on ``rows`` (indices into ``run``; default all).

    A target keeps gain 1 / bias 0 unless the fitted correction lowers its MAE on those hours by
    at least ``MIN_IMPROVEMENT``: without drift, a correction fitted on a few days only adds noise
    (measured on October 2004: benzene 0.048 → 0.053 µg/m³ after 7 days without this rule).
    """
    rows = np.arange(len(run.z)) if rows is None else np.asarray(rows)
    n_targets = run.z.shape[1]
    gain, bias, hours = [1.0] * n_targets, [0.0] * n_targets, [0] * n_targets
    applied = [False] * n_targets
    for j in range(n_targets):
        present = rows[np.isfinite(run.reference[rows, j])]
        hours[j] = int(len(present))
        if len(present) < MIN_REFERENCE_HOURS:
            continue
        z_reference = run.decoder.encode(run.reference[present, j], j)
        g, b = fit_correction(run.z[present, j], z_reference, prior_hours)
        trial = {"gain": [1.0] * n_targets, "bias": [0.0] * n_targets}
        trial["gain"][j], trial["bias"][j] = g, b
        before = mae_with(run, None, present)[j]
        after = mae_with(run, trial, present)[j]
        if after <= (1.0 - MIN_IMPROVEMENT) * before:
            gain[j], bias[j], applied[j] = g, b, True
    return {
        "gain": gain,
        "bias": bias,
        "applied": applied,
        "reference_hours": hours,
        "prior_hours": prior_hours,
    }


def fit_field_calibration(
    run: ModelOnTable, rows: np.ndarray, prior_hours: float = PRIOR_HOURS
) -> tuple[dict[str, float], dict[str, Any], ModelOnTable]:
    """Sensor offsets (kept if they cut the mean relative MAE by ``MIN_IMPROVEMENT``), then the
    per-target output correction on top; returns both and the run through the shifted front end."""
    offsets = fit_sensor_offsets(run, rows, prior_hours)
    shifted = run.with_sensor_offsets(offsets) if offsets else run
    if offsets and _relative_mae(shifted, rows) > (1.0 - MIN_IMPROVEMENT) * _relative_mae(
        run, rows
    ):
        offsets, shifted = {}, run
    return offsets, correction_for(shifted, rows, prior_hours), shifted


def _relative_mae(run: ModelOnTable, rows: np.ndarray) -> float:
    maes = mae_with(run, None, rows)
    means = [
        float(np.nanmean(run.reference[rows, j]))
        if np.isfinite(run.reference[rows, j]).any()
        else 0
        for j in range(len(maes))
    ]
    terms = [m / s for m, s in zip(maes, means, strict=True) if m is not None and s > 0]
    return float(np.mean(terms)) if terms else 0.0


def mae_with(run: ModelOnTable, correction: dict[str, Any] | None, rows: np.ndarray) -> list:
    """Per-target MAE (target units) on ``rows`` with ``correction`` applied (None: without)."""
    decoder = run.decoder
    if correction is not None:
        decoder = OutputDecoder(
            decoder.log_mean,
            decoder.log_std,
            decoder.offset,
            decoder.prior,
            np.asarray(correction["gain"], dtype=np.float64),
            np.asarray(correction["bias"], dtype=np.float64),
        )
    values = decoder.values(run.z[rows])
    result = []
    for j in range(values.shape[1]):
        present = np.isfinite(run.reference[rows, j])
        error = np.abs(values[present, j] - run.reference[rows, j][present])
        result.append(float(np.mean(error)) if present.any() else None)
    return result


def calibrate_bundle(
    bundle: Bundle, table: AirQualityTable, out_dir: Path, prior_hours: float = PRIOR_HOURS
) -> Bundle:
    """Fit ``head.correction`` on every reference hour of ``table``; write a new bundle version."""
    original = run_model(bundle, table)
    rows = np.arange(len(original.z))
    offsets, correction, run = fit_field_calibration(original, rows, prior_hours)
    if not any(h >= MIN_REFERENCE_HOURS for h in correction["reference_hours"]):
        raise DataError(
            f"{table.report.source}: no target has {MIN_REFERENCE_HOURS} hours with both complete "
            "sensor windows and a reference value; co-locate the node with a reference analyser "
            "for at least a day (more is better) and pass that CSV"
        )
    before = mae_with(original, None, rows)
    after = mae_with(run, correction, rows)
    stamps = table.timestamps
    correction = {
        **correction,
        "sensor_offsets_ln": offsets,
        "source": table.report.source,
        "from_row": int(run.end_row[0]),
        "to_row": int(run.end_row[-1]),
        "timestamps": [int(stamps[run.end_row[0]]), int(stamps[run.end_row[-1]])]
        if stamps is not None
        else None,
        "mae_before": before,
        "mae_after": after,
        "note": "MAE on the reference hours the correction was fitted on (in-sample)",
    }
    head = AirQualityHead.from_dict(bundle.head)
    for target, b, a in zip(head.targets, before, after, strict=True):
        log.info("%s MAE on the reference hours: %s → %s %s", target["key"], b, a, target["unit"])
    provenance = {
        **bundle.provenance,
        "calibrated_from": bundle.identity(),
    }
    feature_config = run.config.to_dict()
    new_head = head.with_correction(correction).to_dict()
    return write_bundle(
        out_dir,
        bundle.model_bytes(),
        task=bundle.task,
        name=bundle.name,
        version=calibrated_version(bundle.model_sha256, feature_config, new_head),
        input=bundle.input,
        output=bundle.output,
        feature_config=feature_config,
        head=new_head,
        metrics=bundle.metrics,
        sizes={k: v for k, v in bundle.sizes.items() if k != "tflite_bytes"},
        sparsity=bundle.sparsity,
        provenance=provenance,
        extra=bundle.extra,
    )


def calibrated_version(model_sha256: str, feature_config: dict, head: dict) -> str:
    """A version that differs from the source bundle's although the model bytes are the same.

    The default version is creation second + model hash; a calibration keeps the model and may run
    within the same second as its build, so the hash of what it changed (front-end means and the
    head's correction) is appended: two calibrations differ exactly when their content does.
    """
    changed = json.dumps({"feature_config": feature_config, "head": head}, sort_keys=True)
    digest = hashlib.sha256(changed.encode()).hexdigest()[:8]
    return f"{default_version(datetime.now(timezone.utc), model_sha256)}-cal{digest}"


def calibrate_csv(
    bundle: Bundle,
    data: Path,
    out_dir: Path,
    column_map: tuple[tuple[str, str], ...] = (),
    prior_hours: float = PRIOR_HOURS,
) -> tuple[Bundle, dict[str, Any]]:
    """``tinyfleet calibrate``: the calibrated bundle and its per-target report (gain, bias, MAE).

    ``data`` is a CSV of co-located hours (UCI or generic with ``column_map``).
    """
    from device_sim.sources.uci_air_csv import load_csv

    calibrated = calibrate_bundle(bundle, load_csv(data, column_map), out_dir, prior_hours)
    head = AirQualityHead.from_dict(calibrated.head)
    correction = head.correction or {}
    targets = {
        t["key"]: {
            "gain": round(gain, 4),
            "bias": round(bias, 4),
            "reference_hours": hours,
            "mae_before": before,
            "mae_after": after,
            "unit": t["unit"],
        }
        for t, gain, bias, hours, before, after in zip(
            head.targets,
            correction["gain"],
            correction["bias"],
            correction["reference_hours"],
            correction["mae_before"],
            correction["mae_after"],
            strict=True,
        )
    }
    return calibrated, {"targets": targets, "note": correction["note"]}
