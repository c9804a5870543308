"""``tinyfleet tune``: search a task's knobs for the best int8 model that fits an MCU budget.

Every trial runs the real pipeline — ``task.train`` → ``quantize_trained`` (int8 bundle, scored with
the task's own metric *as int8*) → measured flash, TFLM arena and MACs from ``firmware_bridge`` —
so the front it reports is what a device gets, not a float-model estimate. Two objectives: the int8
headline metric and flash bytes; the arena (and optionally MACs) are Optuna constraints, and a trial
over any budget is infeasible (it still informs the sampler).

The first trial of a new study trains the preset's own knobs (``preset_defaults`` in the records),
so the front always shows whether tuning beat the defaults. The study lives in SQLite (default
``OUT/study.db``): rerunning the same command adds ``--trials`` more trials to it. A trial killed mid-way is marked failed by Optuna's heartbeat on the next run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_sim import console
from device_sim.bundle import Bundle, load_bundle
from device_sim.errors import ConfigError, TinyfleetError
from pipeline.search import Budget, Knob, metric_direction, pareto_front, parse_space
from training.stage import TrainOptions

log = logging.getLogger(__name__)

PARETO_JSON = "pareto.json"
PARETO_PNG = "pareto.png"
BEST_DIR = "best"
TRIALS_DIR = "trials"
STUDY_FILE = "study.db"
PRESET_DEFAULTS = "preset_defaults"  # user attr of the first trial: the preset's own knobs
CONSTRAINT_NAMES = ("flash_over_bytes", "arena_over_bytes", "macs_over")
DISTILL_SPACE = {"distill_temperature": (1.0, 8.0), "distill_weight": (0.0, 1.0)}


@dataclass(frozen=True)
class TuneRequest:
    """Everything ``tinyfleet tune`` was asked for (paths, budget, how many trials)."""

    task: str
    budget: Budget
    trials: int
    out: Path
    options: TrainOptions = field(default_factory=TrainOptions)
    storage: str | None = None  # default sqlite:///OUT/study.db
    study_name: str | None = None  # default tinyfleet-<task>-<preset>
    knob_overrides: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    seed: int = 0
    workers: int = 1  # local processes sharing the study (this one included)
    worker_index: int = 0  # 0: the process that starts the others and writes the results

    @property
    def storage_url(self) -> str:
        """SQLAlchemy URL of the study: ``postgresql://`` means psycopg 3 (not psycopg2)."""
        url = self.storage or f"sqlite:///{(self.out / STUDY_FILE).resolve()}"
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url[len(scheme) :]
        return url

    @property
    def name(self) -> str:
        return self.study_name or f"tinyfleet-{self.task}-{self.options.preset}"


def measure_bundle(bundle: Bundle) -> dict[str, Any]:
    """Flash bytes, TFLM arena bytes and MACs of an int8 bundle, measured by ``firmware_bridge``.

    ``arena_bytes`` is what the firmware must allocate: the smallest arena that allocates and
    invokes in TFLM (bisected by :func:`firmware_bridge.arena.measure_arena`) plus its margin for
    optimised-kernel scratch buffers; ``arena_measured_bytes`` is the bare measurement. The arena
    is recorded in the bundle's ``sizes`` like the firmware export does. ``flash_bytes`` is the
    model flatbuffer plus the C front end's constant tables (mel filterbank, windows …: they grow
    with feature knobs) from :func:`firmware_bridge.profile.profile_bundle`; the TFLM runtime code
    is the same for every trial, so it does not move the comparison. ``macs`` and ``parameters``
    come from the per-layer profile of the flatbuffer.
    """
    from device_sim.bundle import update_bundle
    from firmware_bridge.arena import measure_arena
    from firmware_bridge.profile import profile_bundle

    arena = measure_arena(bundle.model_path)
    if arena.arena_bytes is None:
        raise TinyfleetError(f"the TFLM arena was not measured: {arena.reason}")
    bundle = update_bundle(
        bundle,
        sizes={"arena_bytes": arena.arena_bytes, "arena_margin_bytes": arena.margin_bytes},
    )
    totals = profile_bundle(bundle)["totals"]
    return {
        "flash_bytes": int(totals["flash_bytes"]),
        "model_bytes": int(totals["model_bytes"]),
        "frontend_table_bytes": totals.get("frontend_table_bytes"),
        "arena_bytes": int(arena.recommended_bytes),
        "arena_measured_bytes": int(arena.arena_bytes),
        "ram_bytes": totals.get("ram_bytes"),
        "macs": int(totals["macs"]),
        "parameters": int(totals["parameters"]),
    }


def _same_knobs_done(trial: Any, values: Mapping[str, Any]) -> Any:
    """An earlier complete trial of this study with exactly these knob values, or None."""
    import optuna

    for done in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if done.user_attrs.get("knobs") == dict(values):
            return done
    return None


def _check_measurable() -> None:
    """Fail before the first trial, not after it trained, when a budget cannot be measured."""
    from firmware_bridge.arena import tflm_available

    if not tflm_available():
        raise ConfigError(
            "tune measures every trial's TFLM arena and tflite-micro is not installed: "
            "`pip install tflite-micro` (x86_64 Linux)"
        )


def _headline(metrics: Mapping[str, Any]) -> tuple[str, float]:
    """The task's headline metric: by contract the first key ``score()`` returns."""
    if not metrics:
        raise TinyfleetError("the task's score() returned no metrics")
    name, value = next(iter(metrics.items()))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TinyfleetError(
            f"the headline metric {name}={value!r} is not a number (e.g. the evaluation set has "
            "one class only): give --data with both classes"
        )
    return name, float(value)


class _TrialRunner:
    """The objective: one trial = train + int8 + measure, in its own folder under ``trials/``."""

    def __init__(self, request: TuneRequest, knobs: Sequence[Knob], direction: str) -> None:
        self.request = request
        self.direction = direction
        self.knobs = list(knobs)

    def __call__(self, trial: Any) -> tuple[float, float]:
        from pipeline.build import train_and_quantize
        from training.distill import teacher_from_options
        from training.keras_env import keras

        if trial.user_attrs.get(PRESET_DEFAULTS):
            # the preset as shipped (only pinned --knob values applied): the front then shows
            # whether tuning beat the defaults, and never reports a front below them
            values = {k.name: k.choices[0] for k in self.knobs if k.choices and len(k.choices) == 1}
        else:
            values = {knob.name: knob.suggest(trial) for knob in self.knobs}
        repeat = _same_knobs_done(trial, values)
        if repeat is not None:
            # TPE re-proposes points in small categorical spaces; with the same seed the result is
            # the same model, so the measured figures are reused instead of training it again
            log.info("trial %d: same knobs as trial %d, result reused", trial.number, repeat.number)
            for key, value in repeat.user_attrs.items():
                if key != PRESET_DEFAULTS:
                    trial.set_user_attr(key, value)
            trial.set_user_attr("repeat_of", repeat.number)
            measured = repeat.user_attrs["measured"]
            violations = self.request.budget.violations(measured)  # this run's budget
            for name, over in zip(CONSTRAINT_NAMES, violations, strict=True):
                trial.set_constraint(name, over)
            return repeat.values[0], repeat.values[1]
        options = dataclasses.replace(
            self.request.options, hyperparameters=tuple(sorted(values.items()))
        )
        options = teacher_from_options(options)
        out = self.request.out / TRIALS_DIR / f"{trial.number:04d}"
        log.info("trial %d: %s", trial.number, values)
        started = time.perf_counter()
        keras.backend.clear_session()
        tune_record = {"study": self.request.name, "trial": trial.number, "knobs": values}
        bundle = train_and_quantize(
            self.request.task, options, out, provenance={"tune": tune_record}
        )
        measured = measure_bundle(bundle)
        metric, value = _headline(bundle.metrics["int8"])
        if metric_direction(metric) != self.direction:
            raise RuntimeError(
                f"the study {self.direction}s its metric but {self.request.task}'s headline metric "
                f"is {metric!r}: set HEADLINE_METRIC in training/{self.request.task}.py"
            )
        seconds = time.perf_counter() - started
        trial.set_user_attr("knobs", values)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("metric_name", metric)
        trial.set_user_attr("int8_metrics", bundle.metrics["int8"])
        trial.set_user_attr("float_metrics", bundle.metrics.get("float", {}))
        trial.set_user_attr("measured", measured)
        trial.set_user_attr("bundle", str(out))
        trial.set_user_attr("seconds", round(seconds, 1))
        budget = self.request.budget
        for name, over in zip(CONSTRAINT_NAMES, budget.violations(measured), strict=True):
            trial.set_constraint(name, over)  # > 0: over budget by this much → infeasible
        log.info(
            "trial %d: int8 %s=%.4f, flash %d B, arena %s B, MACs %s (%.0f s)",
            trial.number,
            metric,
            value,
            measured["flash_bytes"],
            measured["arena_bytes"],
            measured["macs"],
            seconds,
        )
        return value, float(measured["flash_bytes"])


def _stored_trials(storage: Any, name: str) -> int:
    import optuna

    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        return 0


def open_study(request: TuneRequest, direction: str) -> Any:
    """Create or resume the study; refuse a resumed study whose directions differ."""
    import optuna

    request.out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # The heartbeat marks a trial whose process died (Ctrl-C, OOM, power cut) as failed on the
        # next run, so a resumed study does not keep a trial RUNNING forever.
        storage = optuna.storages.RDBStorage(
            request.storage_url, heartbeat_interval=30, grace_period=120
        )
    # A resumed run must not replay the first run's random proposals: the sampler's seed moves on
    # with the number of trials already stored (still reproducible from the study's history).
    done = _stored_trials(storage, request.name)
    # Workers sharing the study start together: each gets its own seed, or all would propose alike.
    sampler = optuna.samplers.TPESampler(
        seed=request.seed + 1000 * done + 7919 * request.worker_index,
        n_startup_trials=4,
        multivariate=True,
    )
    try:
        study = optuna.create_study(
            study_name=request.name,
            storage=storage,
            sampler=sampler,
            directions=[direction, "minimize"],
            load_if_exists=True,
        )
    except ValueError as exc:
        raise ConfigError(
            f"study {request.name!r} in {request.storage_url} cannot be resumed: {exc}; pass a "
            "new --study-name or --out"
        ) from exc
    if [d.name.lower() for d in study.directions] != [direction, "minimize"]:
        raise ConfigError(
            f"study {request.name!r} optimises {study.directions}, not ({direction}, flash): pass "
            "a new --study-name"
        )
    study.set_user_attr("task", request.task)
    study.set_user_attr("budget", request.budget.to_dict())
    return study


def _probe_direction(request: TuneRequest) -> str:
    """The direction of the task's headline metric, from a stored study or the task's score()."""
    import optuna

    try:
        existing = optuna.load_study(study_name=request.name, storage=request.storage_url)
    except KeyError:
        existing = None
    if existing is not None:
        return existing.directions[0].name.lower()
    from device_sim.tasks import spec_for
    from training.tasks import task_module

    name = getattr(task_module(request.task), "HEADLINE_METRIC", None)
    if name is None:
        name = spec_for(request.task).headline.metric
    return metric_direction(name)


def tune(request: TuneRequest) -> dict[str, Any]:
    """Run ``request.trials`` more trials, then write the Pareto front and the best bundle."""
    import optuna

    from training.tasks import task_module

    if request.trials < 0:
        raise ConfigError("--trials must be >= 0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = dict(getattr(task_module(request.task), "SEARCH_SPACE", {}))
    if request.options.teacher is not None:
        space = {**DISTILL_SPACE, **space}
    if not space:
        raise ConfigError(f"task {request.task} declares no SEARCH_SPACE: nothing to tune")
    knobs = parse_space(space, dict(request.knob_overrides))
    _check_measurable()
    request.out.mkdir(parents=True, exist_ok=True)
    direction = _probe_direction(request)
    study = open_study(request, direction)
    before = len(study.trials)
    if before == 0 and request.trials > 0 and request.worker_index == 0:
        study.enqueue_trial({}, user_attrs={PRESET_DEFAULTS: True})
    from pipeline.tune_workers import start_workers, trials_of_worker, wait_for_workers

    workers = start_workers(request) if request.worker_index == 0 else []
    own_trials = trials_of_worker(request.trials, request.workers, request.worker_index)
    with console.progress(own_trials, f"tuning {request.task}", "trials") as bar:

        def trial_done(study: Any, trial: Any) -> None:
            if trial.values:
                bar.note(f"last {trial.values[0]:.4g} @ {trial.values[1] / 1024:.1f} KB")
            bar.update()

        study.optimize(
            _TrialRunner(request, knobs, direction),
            n_trials=own_trials,
            catch=(TinyfleetError,),
            gc_after_trial=True,
            callbacks=[trial_done],
        )
    if request.worker_index > 0:  # the first process writes the front once everyone is done
        return {"study": request.name, "worker": request.worker_index, "trials": own_trials}
    failed_workers = wait_for_workers(workers)
    summary = write_results(study, request)
    summary["workers"] = request.workers
    summary["failed_workers"] = failed_workers
    summary["trials_this_run"] = len(study.trials) - before
    return summary


def trial_records(study: Any, budget: Budget) -> list[dict[str, Any]]:
    """One plain dict per finished trial: knobs, int8 metrics, measured sizes, feasibility."""
    import optuna

    records = []
    for trial in study.trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        measured = trial.user_attrs.get("measured", {})
        metric = trial.user_attrs.get("metric_name")
        records.append(
            {
                "trial": trial.number,
                "knobs": trial.user_attrs.get("knobs", trial.params),
                "preset_defaults": bool(trial.user_attrs.get(PRESET_DEFAULTS)),
                "metric": metric,
                metric: trial.values[0],
                "int8": trial.user_attrs.get("int8_metrics", {}),
                "float": trial.user_attrs.get("float_metrics", {}),
                **measured,
                "feasible": budget.fits(measured),
                "bundle": trial.user_attrs.get("bundle"),
                "seconds": trial.user_attrs.get("seconds"),
                "repeat_of": trial.user_attrs.get("repeat_of"),
                "worker": trial.user_attrs.get("worker"),
            }
        )
    return records


def write_results(study: Any, request: TuneRequest) -> dict[str, Any]:
    """Write ``pareto.json``, ``pareto.png`` and ``best/`` (the best int8 bundle within budget).

    Feasibility is recomputed from the stored measurements with *this* run's budget, so resuming a
    study with a tighter budget reports the right front.
    """
    budget = request.budget
    records = trial_records(study, budget)
    direction = study.directions[0].name.lower()
    metric = next((r["metric"] for r in records if r["metric"]), None)
    feasible = [r for r in records if r["feasible"] and r["repeat_of"] is None]
    front = pareto_front(feasible, metric=metric, direction=direction) if metric else []
    best = None
    if front:
        sign = 1.0 if direction == "maximize" else -1.0
        best = max(front, key=lambda r: (sign * r[metric], -r["flash_bytes"]))
    summary = {
        "task": request.task,
        "study": request.name,
        "storage": request.storage_url,
        "budget": budget.to_dict(),
        "metric": metric,
        "direction": direction,
        "trials": len(study.trials),
        "complete": len(records),
        "feasible": len(feasible),
        "pareto": front,
        "best": best,
        "all_trials": records,
    }
    out = request.out
    best_dir = out / BEST_DIR
    if best_dir.exists():  # a best/ from an earlier run may not fit this run's budget
        shutil.rmtree(best_dir)
    if best is not None and not Path(best["bundle"]).is_dir():
        log.warning(
            "the best trial (%d, by %s) was trained on another machine: its bundle is %s there",
            best["trial"],
            best.get("worker"),
            best["bundle"],
        )
        summary["best_bundle"] = None
    elif best is not None:
        shutil.copytree(best["bundle"], best_dir, ignore=shutil.ignore_patterns("firmware"))
        load_bundle(best_dir)  # the copy must verify like any bundle
        summary["best_bundle"] = str(best_dir)
    else:
        summary["best_bundle"] = None
        log.warning(
            "no trial fits the budget (flash %d B, arena %d B): raise the budget or narrow knobs",
            budget.flash_bytes,
            budget.arena_bytes,
        )
    (out / PARETO_JSON).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    from training.report_charts import pareto_chart

    (out / PARETO_PNG).write_bytes(pareto_chart(records, front, budget, metric, direction))
    summary["pareto_json"] = str(out / PARETO_JSON)
    summary["pareto_png"] = str(out / PARETO_PNG)
    return summary
