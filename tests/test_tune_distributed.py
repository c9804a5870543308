"""`tinyfleet tune --workers 2 --storage postgresql://…`: two processes fill one Optuna study kept
in a real PostgreSQL; the first writes the Pareto front from everyone's trials."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout

import pytest

from tests.postgres_fixtures import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]
pytest.importorskip("psycopg", reason="needs psycopg 3 (pip install 'tinyfleet[postgres]')")

RATE_HZ = 1600.0
SMALL = ("epochs=2", "width=8,12", "bottleneck=4", "n_bands=8", "kmeans_clusters=2")


def test_two_worker_processes_share_one_study_in_postgres(tmp_path):
    import optuna
    from optimize_fixtures import small_vibration_folder

    from tinyfleet.cli import main

    data = small_vibration_folder(tmp_path / "data", sample_rate=RATE_HZ)
    with PostgresServer() as postgres:
        argv = ["tune", "vibration", "--flash-kb", "64", "--arena-kb", "16", "--trials", "2"]
        argv += ["--workers", "2", "--storage", postgres.url, "--study-name", "shared"]
        argv += ["--out", str(tmp_path / "tune"), "--data", str(data)]
        argv += ["--sample-rate", str(RATE_HZ), "--json"]
        for text in SMALL:
            argv += ["--knob", text]
        captured = io.StringIO()
        with redirect_stdout(captured):
            assert main(argv) == 0
        result = json.loads(captured.getvalue())
        study = optuna.load_study(
            study_name="shared",
            storage=postgres.url.replace("postgresql://", "postgresql+psycopg://"),
        )
        trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert result["workers"] == 2 and result["failed_workers"] == []
    assert result["storage"].startswith("postgresql+psycopg://")
    assert len(trials) == result["complete"] == 2
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # each process trained one trial
    assert f"{os.uname().nodename}:{os.getpid()}" in workers  # one of them was this process
    assert sum(t.user_attrs.get("preset_defaults", False) for t in trials) == 1
    stored = json.loads((tmp_path / "tune" / "pareto.json").read_text())
    assert {r["trial"] for r in stored["all_trials"]} == {t.number for t in trials}
    assert result["best_bundle"] is not None
