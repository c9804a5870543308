"""Tune under MCU budgets and measure distillation: the figures of docs/optimize.md.

1. One ``tinyfleet tune`` study at the largest flash budget; the Pareto front of int8 metric vs
   model flash is then read off the same trials for each smaller budget (20/40/64 KB by default).
2. The preset's default knobs (``--preset``, default ``quick``: a KWS ``full`` study takes hours on
   2 cores), trained on the same data with the same seed, measured the same way, and its distance
   to each front.
3. Distillation: the default student with and without a larger teacher (``--teacher-knob``) on the
   same data and seed, both scored as int8.

Run: ``.venv/bin/python benchmarks/tune_kws.py [--task kws] [--trials 8] [--json]``. KWS is the
default; ``--task vibration|air_quality`` runs the same study for the other micromodels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("benchmarks.tune_kws")


def _build_and_measure(task: str, options: Any, out: Path) -> dict[str, Any]:
    """Train → int8 bundle → measured flash/arena/MACs, like one tune trial."""
    from pipeline.tune import _headline, measure_bundle
    from quantize.stage import quantize_trained
    from training.distill import teacher_from_options
    from training.keras_env import keras
    from training.tasks import task_module

    keras.backend.clear_session()
    started = time.perf_counter()
    trained = task_module(task).train(teacher_from_options(options))
    trained.save(out)
    bundle = quantize_trained(trained, out)
    metric, value = _headline(bundle.metrics["int8"])
    float_metric = bundle.metrics.get("float", {}).get(metric)
    return {
        "metric": metric,
        metric: value,
        "float": float_metric,
        **measure_bundle(bundle),
        "bundle": str(out),
        "seconds": round(time.perf_counter() - started, 1),
    }


def fronts_per_budget(
    summary: dict[str, Any], budgets_kb: list[float], arena_kb: float
) -> dict[str, Any]:
    """The Pareto front among the study's trials that fit each flash budget."""
    from pipeline.search import Budget, pareto_front

    metric, direction = summary["metric"], summary["direction"]
    result = {}
    for kb in budgets_kb:
        budget = Budget(flash_bytes=int(kb * 1024), arena_bytes=int(arena_kb * 1024))
        feasible = [r for r in summary["all_trials"] if budget.fits(r)]
        front = pareto_front(feasible, metric=metric, direction=direction)
        result[f"{kb:g}KB"] = [
            {
                "trial": r["trial"],
                metric: r[metric],
                "flash_bytes": r["flash_bytes"],
                "arena_bytes": r["arena_bytes"],
                "macs": r.get("macs"),
                "knobs": r["knobs"],
                "preset_defaults": r.get("preset_defaults", False),
            }
            for r in front
        ]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="kws", choices=("kws", "vibration", "air_quality"))
    parser.add_argument("--trials", type=int, default=8, help="trials added to the study")
    parser.add_argument(
        "--preset",
        default="quick",
        choices=("quick", "full"),
        help="data volume and default knobs of the study, the reference and the distillation",
    )
    parser.add_argument("--budgets-kb", default="20,40,64", help="flash budgets, KB")
    parser.add_argument("--arena-kb", type=float, default=64.0, help="arena budget, KB")
    parser.add_argument("--knob", action="append", default=[], help="NAME=V[,V…] for tune")
    parser.add_argument(
        "--teacher-knob",
        action="append",
        default=[],
        help="NAME=V overrides that make the teacher (default: width=64 depth/bottleneck larger)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default artifacts/bench/tune_<task>")
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-distill", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    from pipeline.search import Budget, distance_to_front, parse_override
    from pipeline.tune import TuneRequest, tune
    from training.stage import TrainOptions

    out = args.out or Path("artifacts") / "bench" / f"tune_{args.task}"
    budgets = [float(v) for v in args.budgets_kb.split(",")]
    result: dict[str, Any] = {"task": args.task, "preset": args.preset, "seed": args.seed}

    if not args.skip_tune:
        request = TuneRequest(
            task=args.task,
            budget=Budget(
                flash_bytes=int(max(budgets) * 1024), arena_bytes=int(args.arena_kb * 1024)
            ),
            trials=args.trials,
            out=out / "study",
            options=TrainOptions(preset=args.preset, seed=args.seed),
            knob_overrides=tuple(parse_override(t) for t in args.knob),
            seed=args.seed,
        )
        summary = tune(request)
        result["metric"] = summary["metric"]
        result["direction"] = summary["direction"]
        result["trials"] = summary["complete"]
        result["fronts"] = fronts_per_budget(summary, budgets, args.arena_kb)
        result["pareto_png"] = summary["pareto_png"]
        result["trial_seconds_median"] = _median(r["seconds"] for r in summary["all_trials"])
        defaults = [r for r in summary["all_trials"] if r.get("preset_defaults")]
        if defaults and args.skip_reference:  # the study's first trial is the preset as shipped
            result["reference"] = {
                **defaults[0],
                "float": defaults[0]["float"].get(result["metric"]),
            }

    if not args.skip_reference:
        result["reference"] = _build_and_measure(
            args.task,
            TrainOptions(preset=args.preset, seed=args.seed),
            out / f"reference_{args.preset}",
        )
    if "reference" in result:
        reference = result["reference"]
        if "fronts" in result:
            result["reference_distance"] = {
                name: distance_to_front(
                    front, reference, metric=reference["metric"], direction=result["direction"]
                )
                for name, front in result["fronts"].items()
            }

    if not args.skip_distill:
        result["distillation"] = distillation(args, out)

    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(_render(result))
    return 0


_TEACHER_DEFAULTS = {
    "kws": ("width=64",),
    "vibration": ("width=64", "bottleneck=16"),
    "air_quality": ("width=48", "depth=3"),
}


def distillation(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Student (the preset) without and with a bigger teacher, same data and seed, int8 metric."""
    from pipeline.search import metric_direction, parse_override
    from training.stage import TrainOptions

    pairs = [parse_override(t) for t in (args.teacher_knob or _TEACHER_DEFAULTS[args.task])]
    teacher_knobs = tuple((name, values[0]) for name, values in pairs)
    base = TrainOptions(preset=args.preset, seed=args.seed)
    teacher = _build_and_measure(
        args.task, dataclasses.replace(base, hyperparameters=teacher_knobs), out / "teacher"
    )
    plain = _build_and_measure(args.task, base, out / "student_plain")
    taught = _build_and_measure(
        args.task, dataclasses.replace(base, teacher=Path(teacher["bundle"])), out / "student_kd"
    )
    metric = plain["metric"]
    return {
        "metric": metric,
        "teacher_knobs": dict(teacher_knobs),
        "teacher": {metric: teacher[metric], "flash_bytes": teacher["flash_bytes"]},
        "student_without_teacher": {metric: plain[metric], "flash_bytes": plain["flash_bytes"]},
        "student_with_teacher": {metric: taught[metric], "flash_bytes": taught["flash_bytes"]},
        # positive = the teacher helped (for error metrics such as MAE: the error went down)
        "gain": (1 if metric_direction(metric) == "maximize" else -1)
        * (taught[metric] - plain[metric]),
        "temperature_weight": "defaults of training.distill (T=2, weight=0.5; T unused for regression)",
    }


def _median(values: Any) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def _render(result: dict[str, Any]) -> str:
    lines = [f"task {result['task']} (tune preset {result['preset']}, seed {result['seed']})"]
    metric = result.get("metric") or result.get("reference", {}).get("metric", "metric")
    for name, front in result.get("fronts", {}).items():
        lines.append(f"Pareto front within {name} flash ({len(front)} points):")
        for r in front:
            lines.append(
                f"  #{r['trial']:>3} int8 {metric} {r[metric]:.4f}  flash {r['flash_bytes']} B  "
                f"arena {r['arena_bytes']} B  {r['knobs']}"
            )
    if "reference" in result:
        ref = result["reference"]
        lines.append(
            f"default preset: int8 {metric} {ref[metric]:.4f}, flash {ref['flash_bytes']} B, "
            f"arena {ref['arena_bytes']} B"
        )
        for name, gap in result.get("reference_distance", {}).items():
            lines.append(f"  vs front within {name}: {gap}")
    if "distillation" in result:
        lines.append(f"distillation: {result['distillation']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
