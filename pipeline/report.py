"""``tinyfleet report``: one self-contained HTML page per bundle (charts embedded as base64 PNG).

Everything comes from the bundle folder — ``bundle.json``, ``model.tflite`` and, when the training
stage left it there, ``evaluation.npz`` — and the int8 outputs behind the task charts are recomputed
with :class:`device_sim.interpreter.Int8Model` and interpreted by the task's own device runtime
(:func:`device_sim.tasks.runtime_for`), so the page shows what a device would compute. No
TensorFlow is needed. A section whose data the bundle lacks says so instead of disappearing.

Training curves are read from ``provenance["history"]`` (``{"loss": [...], "val_loss": [...]}``,
i.e. ``FitResult.history``), which task modules record when they train.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from device_sim.bundle import Bundle, load_bundle
from device_sim.errors import BundleError, TinyfleetError

if TYPE_CHECKING:
    from training.report_charts import TaskChart

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.npz"
REPORT_FILE = "report.html"
MAX_EVAL_ROWS = 4000  # int8 inference runs window by window; enough for stable charts

# Target MCU classes (whole-chip flash and RAM in bytes). The model's flash excludes the TFLM
# runtime code and the application; its RAM is the tensor arena only.
MCU_TARGETS: tuple[dict[str, Any], ...] = (
    {
        "name": "Cortex-M4 class (STM32L432: 256 KB / 64 KB)",
        "flash_bytes": 256 * 1024,
        "ram_bytes": 64 * 1024,
    },
    {"name": "nRF52840 (1 MB / 256 KB)", "flash_bytes": 1024 * 1024, "ram_bytes": 256 * 1024},
    {"name": "RP2040 (2 MB QSPI / 264 KB)", "flash_bytes": 2048 * 1024, "ram_bytes": 264 * 1024},
    {"name": "ESP32-S3 (8 MB / 512 KB SRAM)", "flash_bytes": 8192 * 1024, "ram_bytes": 512 * 1024},
)


@dataclass
class Section:
    """One titled block of the page; ``body`` is trusted HTML built in this module."""

    anchor: str
    title: str
    body: str


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _fmt(value: Any) -> str:
    """A cell: numbers rounded, mappings as a nested key/value table, short lists joined."""
    if isinstance(value, bool) or value is None:
        return _e("—" if value is None else ("yes" if value else "no"))
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    if isinstance(value, int):
        return _e(f"{value:,}") if abs(value) >= 10_000 else _e(value)
    if isinstance(value, Mapping):
        if not value:
            return "—"
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in value.items())
        return f'<table class="inner">{rows}</table>'
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            shown = ", ".join(_fmt(v) for v in value[:24])
            return shown + (f" … ({len(value)} items)" if len(value) > 24 else "")
        return "".join(_fmt(v) for v in value[:24])
    return _e(value)


def load_evaluation(bundle: Bundle) -> dict[str, np.ndarray] | None:
    path = bundle.directory / EVALUATION_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def int8_outputs(bundle: Bundle, x: np.ndarray) -> np.ndarray:
    """Dequantized int8 model outputs for every evaluation window (as the device computes them)."""
    from device_sim.interpreter import Int8Model

    return Int8Model.from_bundle(bundle).predict_batch(x)


# --- sections -------------------------------------------------------------------------------


def summary_section(bundle: Bundle) -> Section:
    rows = [
        ("task", bundle.task),
        ("name", bundle.name),
        ("version", bundle.version),
        ("model sha256", bundle.model_sha256),
        ("input", f"{bundle.input.shape} {bundle.input.dtype}"),
        ("output", f"{bundle.output.shape} {bundle.output.dtype}"),
        ("created (UTC)", bundle.provenance.get("created_utc", "?")),
    ]
    return Section("summary", "Bundle", _table(rows))


def data_section(bundle: Bundle, evaluation: Mapping[str, np.ndarray] | None) -> Section:
    parts = []
    data = bundle.provenance.get("data")
    if data:
        rows = list(data.items()) if isinstance(data, Mapping) else [("data", data)]
        parts.append("<h3>Training data</h3>" + _table(rows))
    else:
        parts.append(_note("the bundle's provenance does not describe its training data"))
    parts.append("<h3>Front end</h3>" + _table(list(bundle.feature_config.items())))
    if evaluation is None:
        parts.append(_note(f"{EVALUATION_FILE} is not in the bundle folder: no held-out rows"))
    else:
        parts.append(
            "<h3>Held-out evaluation set</h3>" + _table(_held_out_rows(bundle, evaluation))
        )
    return Section("data", "Data", "".join(parts))


def _held_out_rows(bundle: Bundle, evaluation: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """What the held-out set is, in words: windows, and per class how many (by label name)."""
    x = evaluation.get("x")
    rows = [("windows", f"{len(x):,}" if x is not None else "?")]
    if x is not None:
        rows.append(("model input per window", " × ".join(str(n) for n in x.shape[1:])))
    labels = list(bundle.head.get("labels", []))
    for key, names in (("y", labels), ("class_index", ["normal"])):
        values = evaluation.get(key)
        if values is None or values.ndim != 1 or values.dtype.kind not in "iub":
            continue
        uniques, counts = np.unique(values, return_counts=True)
        if len(uniques) > 40:
            continue

        described = [
            str(names[u]) if u < len(names) else (f"fault class {u}" if u > 0 else str(u))
            for u in (int(u) for u in uniques)
        ]
        rows.append(
            (
                "windows per class",
                ", ".join(f"{n}: {c:,}" for n, c in zip(described, counts, strict=True)),
            )
        )
    return rows


def training_section(bundle: Bundle) -> Section:
    from training.report_charts import training_curves

    history = bundle.provenance.get("history")
    parts = []
    if isinstance(history, Mapping) and any(history.values()):
        clean = {k: [float(v) for v in vals] for k, vals in history.items() if vals}
        parts.append(_img(training_curves(clean), "training curves"))
    else:
        parts.append(_note("no training curves: the task did not record provenance['history']"))
    facts = [
        (k, bundle.provenance[k])
        for k in ("preset", "seed", "train_seconds", "epochs", "teacher")
        if k in bundle.provenance
    ]
    if bundle.sparsity:
        facts.append(("sparsity (overall)", bundle.sparsity.get("overall")))
    if facts:
        parts.append(_table(facts))
    return Section("training", "Training", "".join(parts))


def metrics_section(bundle: Bundle) -> Section:
    from training.report_charts import metric_bars

    float_m = bundle.metrics.get("float", {}) or {}
    int8_m = bundle.metrics.get("int8", {}) or {}
    names = [k for k in int8_m if not isinstance(int8_m[k], (dict, list))]
    if not names:
        return Section("metrics", "Float vs int8", _note("the bundle records no metrics"))
    rows = [(k, float_m.get(k, "—"), int8_m[k]) for k in names]
    body = _table(rows, ("metric", "float", "int8"))
    targets = int8_m.get("targets")
    if isinstance(targets, Mapping) and targets:
        float_targets = float_m.get("targets") or {}
        body += "<h3>Per target</h3>" + _table(
            [
                (
                    name,
                    t.get("unit", ""),
                    (float_targets.get(name) or {}).get("mae", "—"),
                    t.get("mae"),
                    t.get("baseline_linear_mae", "—"),
                    t.get("baseline_gbm_mae", "—"),
                    t.get("r2", "—"),
                    t.get("n_test", "—"),
                )
                for name, t in targets.items()
                if isinstance(t, Mapping)
            ],
            ("target", "unit", "float MAE", "int8 MAE", "linear MAE", "GBM MAE", "int8 R²", "rows"),
        )
    # Counts and thresholds would dwarf rates on one axis; the table above has them all.
    numeric = {
        k: v
        for k, v in int8_m.items()
        if isinstance(v, (int, float))
        and k != "n"
        and not k.startswith(("n_", "target_"))
        and not k.endswith("_n")
        and "threshold" not in k
    }
    if any(isinstance(float_m.get(k), (int, float)) for k in numeric):
        body += _img(metric_bars(float_m, numeric), "float vs int8 metrics")
    return Section("metrics", "Float vs int8 (same held-out rows)", body)


@dataclass
class Int8Run:
    """The int8 model's outputs on (the first rows of) the held-out set, with those rows."""

    evaluation: dict[str, np.ndarray]
    outputs: np.ndarray
    total_rows: int


def run_int8(bundle: Bundle, evaluation: Mapping[str, np.ndarray] | None) -> Int8Run | None:
    """Run the bundle's int8 model on up to ``MAX_EVAL_ROWS`` held-out windows (None: no data)."""
    if evaluation is None or "x" not in evaluation:
        return None
    x = np.asarray(evaluation["x"], dtype=np.float32)
    rows = min(len(x), MAX_EVAL_ROWS)
    subset = {k: v[:rows] for k, v in evaluation.items() if np.ndim(v) and len(v) == len(x)}
    return Int8Run(subset, int8_outputs(bundle, x[:rows]), len(x))


def task_section(bundle: Bundle, run: Int8Run | None) -> Section:
    """The task's own charts (``training/<task>/report_chart.py``) on the int8 outputs."""
    from training.tasks import task_module

    task = task_module(bundle.task)
    if run is None:
        return Section(
            "task", task.REPORT_TITLE, _note(f"needs {EVALUATION_FILE} with held-out inputs 'x'")
        )
    body = _chart_html(task.report_chart(bundle, run.evaluation, run.outputs))
    if len(run.outputs) < run.total_rows:
        body += _note(f"computed on the first {len(run.outputs)} of {run.total_rows} windows")
    return Section("task", task.REPORT_TITLE, body)


def _chart_html(chart: TaskChart) -> str:
    """A task's chart data as HTML: its images, then its notes, then its table."""
    body = "".join(_img(png, alt) for png, alt in chart.images)
    body += "".join(_note(text) for text in chart.notes)
    if chart.table is not None:
        body += _table(*chart.table)
    return body


def layers_section(bundle: Bundle) -> Section:
    from device_sim.model_graph import read_model
    from firmware_bridge.profile import profile_graph
    from training.report_charts import layer_bars

    profile = profile_graph(read_model(bundle.model_bytes()))
    layers = profile["layers"]
    names = [f"{i}: {row['op']} {row['layer'].split(';')[0][-32:]}" for i, row in enumerate(layers)]
    body = _img(
        layer_bars(names, [row["macs"] for row in layers], [row["parameters"] for row in layers]),
        "per-layer MACs and parameters",
    )
    body += _table(
        [
            (
                i,
                row["layer"].split(";")[0],
                row["op"],
                str(row["output_shape"]),
                row["macs"],
                row["parameters"],
            )
            for i, row in enumerate(layers)
        ],
        ("#", "layer (first tensor name)", "op", "output shape", "MACs", "parameters"),
    )
    body += _note(
        f"total: {profile['macs']:,} MACs and {profile['parameters']:,} parameters per inference"
    )
    latency = profile.get("latency") or []
    if latency:
        body += "<h3>Latency estimates (not measurements)</h3>" + _table(
            [
                (r["target"], r["reference_ms"], r["optimized_ms"], r["optimized_library"])
                for r in latency
            ],
            ("target", "TFLM reference kernels, ms", "optimized kernels, ms", "library"),
        )
        body += _note(profile.get("latency_caveat", ""))
    return Section("layers", "Per-layer MACs and parameters (from model.tflite)", body)


@dataclass
class Footprint:
    """What the model costs on an MCU (``totals`` of firmware_bridge.profile), or why unknown."""

    totals: dict[str, Any] | None
    arena_source: str
    error: str | None = None


def measure_footprint(bundle: Bundle) -> Footprint:
    from firmware_bridge.profile import profile_bundle

    source = "measured in TFLM by the firmware export (+ margin for optimized kernels)"
    if bundle.sizes.get("arena_bytes") is None:
        bundle, source = _measure_arena_now(bundle)
    try:
        return Footprint(dict(profile_bundle(bundle)["totals"]), source)
    except TinyfleetError as exc:  # e.g. a bundle whose front end this version cannot rebuild
        return Footprint(None, source, str(exc))


def fitting_targets(totals: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(MCU class, whether model + front end fit its flash and arena + buffers its RAM)."""
    flash, ram = totals.get("flash_bytes"), totals.get("ram_bytes")
    return [
        (
            t["name"],
            flash is not None
            and ram is not None
            and flash <= t["flash_bytes"]
            and ram <= t["ram_bytes"],
        )
        for t in MCU_TARGETS
    ]


def _headline_metric(bundle: Bundle) -> tuple[str, str, str | None]:
    """(int8 figure in words, float figure in words, int8-vs-float verdict)."""
    from device_sim.tasks import spec_for, task_names
    from quantize.report import int8_loss

    known = bundle.task in task_names()

    float_m = bundle.metrics.get("float", {}) or {}
    int8_m = bundle.metrics.get("int8", {}) or {}
    targets = int8_m.get("targets")
    if isinstance(targets, Mapping) and targets:
        float_targets = float_m.get("targets") or {}

        def maes(source: Mapping[str, Any]) -> str:
            return " · ".join(
                f"{name.split('(')[0]} {t['mae']:.3g} {t.get('unit', '')}".strip()
                for name, t in source.items()
                if isinstance(t, Mapping) and isinstance(t.get("mae"), (int, float))
            )

        int8_text, float_text = f"MAE {maes(targets)}", f"MAE {maes(float_targets)}"
    else:
        name = spec_for(bundle.task).headline.metric if known else None
        name = name if name in int8_m else next(iter(int8_m), None)
        if name is None:
            return "no metrics recorded", "—", None
        label = {"auc": "AUC", "accuracy": "accuracy"}.get(name, name)
        int8_text = f"{label} {_fmt(int8_m.get(name))}"
        float_text = f"{label} {_fmt(float_m.get(name))}" if name in float_m else "—"
    verdict = None
    if known and float_m and int8_m:
        loss = int8_loss(bundle.task, float_m, int8_m)
        if loss["loss"] is not None:
            kind = "relative" if loss["tolerance_kind"] == "relative" else "absolute"
            amount = f"{loss['loss']:+.1%}" if kind == "relative" else f"{loss['loss']:+.4f}"
            ok = "within" if loss["within_tolerance"] else "OUTSIDE"
            verdict = (
                f"int8 costs {amount} on {loss['metric']} vs float — {ok} the {kind} "
                f"tolerance of {loss['tolerance']:g}"
            )
    return int8_text, float_text, verdict


def _evaluated_on(bundle: Bundle, evaluation: Mapping[str, np.ndarray] | None) -> str:
    """On what data the headline was measured, in words."""
    parts = []
    split = (bundle.metrics.get("int8") or {}).get("split") or {}
    data = bundle.provenance.get("data")
    if isinstance(data, Mapping):
        data = data.get("description") or data.get("source") or ", ".join(map(str, data.values()))
    if evaluation is not None and "x" in evaluation:
        parts.append(f"{len(evaluation['x']):,} held-out windows")
    elif isinstance(split, Mapping) and split.get("n_test"):
        parts.append(f"{split['n_test']:,} held-out windows")
    if isinstance(split, Mapping) and split.get("method"):
        since = f" from {split['test_from']}" if split.get("test_from") else ""
        parts.append(f"{split['method']} split{since}")
    if data:
        parts.append(f"data: {str(data)[:160]}")
    return "; ".join(parts) or "the bundle does not say which data"


def headline_section(
    bundle: Bundle, footprint: Footprint, evaluation: Mapping[str, np.ndarray] | None
) -> Section:
    """The answer first: how good, on what, how big, and which MCUs it fits."""
    int8_text, float_text, verdict = _headline_metric(bundle)
    totals = footprint.totals or {}
    cards = [
        ("int8 model", int8_text, f"float: {float_text}"),
        ("flash", _kilobytes(totals.get("flash_bytes") or bundle.sizes.get("tflite_bytes")),
         f"model {_kilobytes(totals.get('model_bytes') or bundle.sizes.get('tflite_bytes'))} "
         f"+ front-end tables {_kilobytes(totals.get('frontend_table_bytes'))}"),
        ("RAM", _kilobytes(totals.get("ram_bytes")),
         f"TFLM arena {_kilobytes(totals.get('arena_bytes') or bundle.sizes.get('arena_bytes'))}"
         " + front-end buffers"),
        ("MACs per inference", _fmt(totals.get("macs") or bundle.sizes.get("macs")), ""),
    ]  # fmt: skip
    body = (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="what">{_e(what)}</div><div class="value">{_e(value)}'
            f'</div><div class="detail">{_e(detail)}</div></div>'
            for what, value, detail in cards
        )
        + "</div>"
    )
    body += f'<p class="data">Measured on {_e(_evaluated_on(bundle, evaluation))}.</p>'
    if verdict:
        body += f'<p class="verdict">{_e(verdict)}.</p>'
    if footprint.totals:
        fits = fitting_targets(footprint.totals)
        body += (
            '<p class="fits">Fits: '
            + " ".join(
                f'<span class="{"yes" if ok else "no"}">{"✓" if ok else "✗"} {_e(name)}</span>'
                for name, ok in fits
            )
            + "</p>"
        )
    else:
        body += _note(f"flash/RAM not profiled: {footprint.error}")
    return Section("headline", "The answer: how good, on what, how big", body)


def _kilobytes(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{int(value) / 1024:.1f} KB"


def budget_section(bundle: Bundle, footprint: Footprint) -> Section:
    from training.report_charts import budget_bars

    source, totals = footprint.arena_source, footprint.totals
    if totals is None:
        return Section(
            "budget", "Flash and RAM against target MCUs", _note(f"no profile: {footprint.error}")
        )
    flash = int(totals["flash_bytes"])
    ram = totals.get("ram_bytes")
    rows = [
        ("int8 model (flatbuffer)", _bytes(totals["model_bytes"])),
        ("front-end constant tables", _bytes(totals.get("frontend_table_bytes"))),
        ("flash total (model + front end)", _bytes(flash)),
        ("tensor arena, measured", f"{_bytes(totals.get('arena_bytes'))} — {source}"),
        ("arena margin (optimized-kernel scratch)", _bytes(totals.get("arena_margin_bytes"))),
        ("front-end RAM (buffers, window, features)", _bytes(_frontend_ram(totals))),
        ("RAM total (arena + margin + front end)", _bytes(ram)),
    ]
    body = _table(rows)
    body += _img(budget_bars(flash, ram, MCU_TARGETS), "flash and RAM against MCU budgets")
    body += _table(
        [
            (
                t["name"],
                f"{flash / t['flash_bytes']:.1%}",
                f"{ram / t['ram_bytes']:.1%}" if ram else "not measured",
            )
            for t in MCU_TARGETS
        ],
        ("target", "flash share", "RAM share"),
    )
    body += _note(
        "Flash counts the model and the front end's tables: add the TFLM runtime code (tens of KB, "
        "depends on the ops and the toolchain) and your application. RAM counts the tensor arena "
        "and the front end's buffers, not your application's stack and heap."
    )
    return Section("budget", "Flash and RAM against target MCUs", body)


def _frontend_ram(totals: Mapping[str, Any]) -> int | None:
    parts = ("frontend_buffer_bytes", "frontend_window_bytes", "frontend_feature_bytes")
    if any(totals.get(key) is None for key in parts):
        return None
    return int(sum(totals[key] for key in parts))


def _bytes(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{int(value):,} B ({int(value) / 1024:.1f} KB)"


def _measure_arena_now(bundle: Bundle) -> tuple[Bundle, str]:
    """The bundle with a TFLM-measured arena in ``sizes`` (in memory only: the report reads)."""
    import dataclasses

    from firmware_bridge.arena import measure_arena

    measurement = measure_arena(bundle.model_path)
    if measurement.arena_bytes is None:
        return bundle, f"not measured: {measurement.reason}"
    sizes = {
        **bundle.sizes,
        "arena_bytes": measurement.arena_bytes,
        "arena_margin_bytes": measurement.margin_bytes,
    }
    return dataclasses.replace(bundle, sizes=sizes), "measured in TFLM now (the bundle had none)"


def explanation_section(bundle: Bundle, run: Int8Run | None) -> Section:
    from training.report_charts import importance_bars
    from training.tasks import task_module

    found = list(
        _importance_tables({"head": bundle.head, "extra": bundle.extra, "metrics": bundle.metrics})
    )
    task_importance = getattr(task_module(bundle.task), "report_importance", None)
    if task_importance is not None and run is not None:
        found.append(task_importance(bundle, run.evaluation, run.outputs))
    found = [f for f in found if f is not None]
    if not found:
        return Section(
            "explanation",
            "Explanation",
            _note("the bundle records no band/input importance (bundle.extra, head or metrics)"),
        )
    body = ""
    for where, names, values in found[:4]:
        top = np.argsort(values)[::-1][:24]
        body += _img(
            importance_bars([names[i] for i in top], [values[i] for i in top], where),
            f"importance {where}",
        )
    return Section("explanation", "Explanation (band / input importance)", body)


def _importance_tables(tree: Any, path: str = "", inside: bool = False) -> Any:
    """Yield (path, names, values) for name→number mappings under an importance-like key.

    E.g. ``extra.explanation.per_target.CO = {"PT08.S1": 0.31, ...}`` (air quality) or a list of
    ``{"feature": …, "share": …}`` items. Booleans are flags, not importances.
    """
    if isinstance(tree, Mapping):
        numeric = {
            k: float(v)
            for k, v in tree.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if inside and len(numeric) >= 2 and len(numeric) == len(tree):
            yield path, list(numeric), list(numeric.values())
            return
        for key, value in tree.items():
            here = f"{path}.{key}" if path else str(key)
            interesting = any(w in str(key).lower() for w in _IMPORTANCE_WORDS)
            yield from _importance_tables(value, here, inside or interesting)
    elif inside and isinstance(tree, list) and tree and all(isinstance(v, Mapping) for v in tree):
        pairs = [p for p in (_name_value(v) for v in tree) if p is not None]
        if len(pairs) >= 2:
            yield path, [p[0] for p in pairs], [p[1] for p in pairs]


_IMPORTANCE_WORDS = ("importance", "explain", "explanation", "saliency")


def _name_value(item: Mapping[str, Any]) -> tuple[str, float] | None:
    name = next((item[k] for k in ("feature", "name", "band", "input") if k in item), None)
    value = next(
        (item[k] for k in ("importance", "share", "value", "score", "drop") if k in item), None
    )
    if name is None or not isinstance(value, (int, float)):
        return None
    return str(name), float(value)


def provenance_section(bundle: Bundle) -> Section:
    provenance = {k: v for k, v in bundle.provenance.items() if k != "history"}
    rows = [("model sha256", bundle.model_sha256), *provenance.items()]
    return Section("provenance", "Provenance", _table(rows))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1100px;
padding:1em 2em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;
font-size:13px;text-align:left;vertical-align:top} th{background:#f4f4f4}
img{max-width:100%;display:block;margin:.6em 0} .note{color:#666;font-style:italic}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:12px} nav a{margin-right:1em}
code{font-size:12px} table.inner{margin:0} table.inner th{background:#fafafa;font-weight:normal}
#headline h2{font-size:1.6em;border:none;margin-top:.6em}
#headline{background:#f6f8fb;border:1px solid #dde3ec;border-radius:8px;padding:.2em 1.2em 1em}
.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde3ec;border-radius:6px;padding:.6em 1em;min-width:190px}
.card .what{color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:1.35em;font-weight:600;margin:.15em 0} .card .detail{color:#555;font-size:12px}
.fits span{display:inline-block;margin:.2em .6em .2em 0;padding:2px 8px;border-radius:4px}
.fits .yes{background:#e3f4e6} .fits .no{background:#fbe4e4;color:#888} .verdict{font-weight:500}
"""


def render_html(bundle: Bundle, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{_e(s.title.split(" (")[0])}</a>' for s in sections)
    blocks = "".join(
        f'<section id="{s.anchor}"><h2>{_e(s.title)}</h2>{s.body}</section>' for s in sections
    )
    title = f"tinyfleet report: {bundle.task} / {bundle.name} {bundle.version}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><nav>{nav}</nav>{blocks}</body></html>\n"
    )


def build_sections(bundle: Bundle) -> list[Section]:
    """The answer first (headline), then the charts a person reads at a glance, then details."""
    evaluation = load_evaluation(bundle)
    run = run_int8(bundle, evaluation)
    footprint = measure_footprint(bundle)
    return [
        headline_section(bundle, footprint, evaluation),
        task_section(bundle, run),
        training_section(bundle),
        layers_section(bundle),
        budget_section(bundle, footprint),
        metrics_section(bundle),
        explanation_section(bundle, run),
        data_section(bundle, evaluation),
        summary_section(bundle),
        provenance_section(bundle),
    ]


def write_report(bundle_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of the bundle in ``bundle_dir``; returns the file written."""
    bundle = load_bundle(bundle_dir)
    out = Path(out) if out is not None else bundle.directory / REPORT_FILE
    if out.is_dir():
        raise BundleError(f"--out {out} is a folder: give a file name such as {out}/report.html")
    page = render_html(bundle, build_sections(bundle))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    log.info("report for %s written to %s (%d bytes)", bundle.directory, out, len(page))
    return out
