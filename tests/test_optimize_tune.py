"""`tinyfleet tune` end to end on the fastest task: int8 scores, measured sizes, constraints, resume."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]

# Tiny trials: ~70 s of 1.6 kHz data, 2 epochs of a narrow autoencoder over 8 bands per axis.
RATE_HZ = 1600.0
SMALL = ("epochs=2", "width=8,12", "bottleneck=4", "n_bands=8", "kmeans_clusters=2")


def test_tune_scores_trials_as_int8_with_measured_sizes_and_resumes_the_study(tmp_path):
    import optuna
    from optimize_fixtures import small_vibration_folder

    from device_sim.bundle import load_bundle
    from pipeline.search import Budget, parse_override
    from pipeline.tune import TuneRequest, tune
    from tinyfleet.cli import main
    from training.stage import TrainOptions

    data = small_vibration_folder(tmp_path / "data", sample_rate=RATE_HZ)
    out = tmp_path / "tune"
    budget = Budget(flash_bytes=64 * 1024, arena_bytes=16 * 1024)
    request = TuneRequest(
        task="vibration",
        budget=budget,
        trials=2,
        out=out,
        options=TrainOptions(preset="quick", data=data, sample_rate=RATE_HZ),
        knob_overrides=tuple(parse_override(t) for t in SMALL),
    )
    first = tune(request)
    assert (first["complete"], first["trials_this_run"]) == (2, 2)
    stored = json.loads((out / "pareto.json").read_text())
    assert stored["metric"] == "auc" and stored["direction"] == "maximize"
    for record in stored["all_trials"]:
        bundle = load_bundle(record["bundle"])
        # scored as int8: the recorded metric is the int8 bundle's own, not the float model's
        assert record["auc"] == pytest.approx(bundle.metrics["int8"]["auc"])
        assert record["model_bytes"] == len(bundle.model_bytes()) <= record["flash_bytes"]
        assert record["macs"] > 0 and bundle.sizes["arena_bytes"] == record["arena_measured_bytes"]
        assert 0 < record["arena_measured_bytes"] <= record["arena_bytes"] < 64 * 1024
        assert record["feasible"] == budget.fits(record)
        assert record["knobs"]["epochs"] == 2  # pinned knobs apply to every trial
    defaults, sampled = stored["all_trials"]
    assert defaults["preset_defaults"] and "width" not in defaults["knobs"]  # preset's width
    assert not sampled["preset_defaults"] and sampled["knobs"]["width"] in (8, 12)
    study = optuna.load_study(study_name=first["study"], storage=first["storage"])
    for trial, record in zip(study.trials, stored["all_trials"], strict=True):
        assert trial.constraints["flash_over_bytes"] == record["flash_bytes"] - budget.flash_bytes
        assert trial.constraints["arena_over_bytes"] == record["arena_bytes"] - budget.arena_bytes
    assert first["best"] is not None
    best = load_bundle(out / "best")
    assert best.metrics["int8"]["auc"] == max(r["auc"] for r in first["pareto"])
    with open(out / "pareto.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"

    # Rerun through the CLI with a budget nothing fits: the same study grows by one trial, every
    # trial is infeasible under the new budget, and the old best/ is not left behind as "best".
    argv = ["tune", "vibration", "--flash-kb", "1", "--arena-kb", "1", "--trials", "1"]
    argv += ["--out", str(out), "--data", str(data), "--sample-rate", str(RATE_HZ), "--json"]
    for text in SMALL:
        argv += ["--knob", text]
    captured = io.StringIO()
    with redirect_stdout(captured):
        assert main(argv) == 0
    second = json.loads(captured.getvalue())
    assert (second["complete"], second["trials_this_run"]) == (3, 1)
    assert second["feasible"] == 0 and second["pareto"] == [] and second["best"] is None
    assert not (out / "best").exists()
    # the resumed run proposes new knobs, not a replay of the first run's random start
    resumed = second["all_trials"][2]
    assert resumed["repeat_of"] is None and resumed["knobs"] != second["all_trials"][1]["knobs"]
    trials = optuna.load_study(study_name=first["study"], storage=first["storage"]).trials
    assert len(trials) == 3
    assert trials[-1].constraints["flash_over_bytes"] > 0  # stored as infeasible for the sampler


def test_tune_refuses_an_unknown_knob_before_training(tmp_path, capsys):
    from tinyfleet.cli import main

    argv = ["tune", "vibration", "--flash-kb", "8", "--arena-kb", "8", "--trials", "1"]
    status = main([*argv, "--out", str(tmp_path), "--knob", "widht=8"])
    assert status == 2
    assert "unknown knob(s) widht" in capsys.readouterr().err
    assert not (tmp_path / "trials").exists()


def test_a_repeated_knob_set_is_recognised_instead_of_retrained():
    import optuna

    from pipeline.tune import _same_knobs_done

    study = optuna.create_study(directions=["maximize", "minimize"])

    def fake(trial):
        trial.set_user_attr("knobs", {"width": trial.suggest_categorical("width", [8, 16])})
        return 0.9, 1000.0

    study.optimize(fake, n_trials=1)
    width = study.trials[0].user_attrs["knobs"]["width"]
    probe = study.ask()
    assert _same_knobs_done(probe, {"width": width}).number == 0
    assert _same_knobs_done(probe, {"width": 24 - width}) is None
