"""Local worker processes for ``tinyfleet tune --workers N``: one Optuna study, several trainers.

Why processes: a trial is a whole Keras training + int8 conversion + TFLM measurement, which holds
the GIL and TensorFlow's global state; separate processes are how Optuna's documentation runs
parallel trials against one RDB storage. Each worker gets the request (pickled to a file next to
the study's outputs — it never leaves the machine), its share of the trials and its own sampler
seed; the first process (``worker_index`` 0) runs its share too, waits for the others and writes
the Pareto front. Other machines join the same study by running ``tinyfleet tune`` with the same
``--storage postgresql://…`` and ``--study-name``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from device_sim.errors import ConfigError

log = logging.getLogger(__name__)


def trials_of_worker(trials: int, workers: int, index: int) -> int:
    """Worker ``index``'s share of ``trials`` (the first ones take the remainder)."""
    return trials // workers + (1 if index < trials % workers else 0)


def start_workers(request: Any) -> list[tuple[subprocess.Popen, Path]]:
    """Start workers 1 … N−1 for ``request`` (a :class:`pipeline.tune.TuneRequest`)."""
    if request.workers < 1:
        raise ConfigError("--workers must be >= 1")
    if request.workers == 1:
        return []
    if request.storage_url.startswith("sqlite"):
        log.warning(
            "%d workers share an SQLite study: fine on one machine, but writes queue on the file "
            "lock; use --storage postgresql://… for many workers or several machines",
            request.workers,
        )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
        "TINYFLEET_PROGRESS": "off",  # one progress display: the first process's
    }
    started = []
    for index in range(1, request.workers):
        if trials_of_worker(request.trials, request.workers, index) == 0:
            continue
        handle, name = tempfile.mkstemp(prefix=f"tune-worker-{index}-", suffix=".pickle")
        with os.fdopen(handle, "wb") as file:
            pickle.dump(dataclasses.replace(request, worker_index=index), file)
        log_path = Path(name).with_suffix(".log")
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.tune_workers", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "wb"),  # noqa: SIM115 - owned by the child
        )
        started.append((process, Path(name)))
    log.info("started %d tune workers: %s", len(started), [p.pid for p, _ in started])
    return started


def wait_for_workers(workers: list[tuple[subprocess.Popen, Path]]) -> list[dict[str, Any]]:
    """Wait for every worker; returns the ones that failed (pid, exit status, last log lines)."""
    failed = []
    for process, request_file in workers:
        status = process.wait()
        log_path = request_file.with_suffix(".log")
        if status != 0:
            tail = log_path.read_text(errors="replace")[-1500:] if log_path.exists() else ""
            log.warning("tune worker %d exited with %d: %s", process.pid, status, tail)
            failed.append({"pid": process.pid, "status": status, "log_tail": tail})
        request_file.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
    return failed


def _main(request_file: str) -> int:
    from device_sim import console

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    console.configure("off", native_logs=False)  # before TensorFlow is imported
    from pipeline.tune import tune

    with open(request_file, "rb") as file:
        request = pickle.load(file)
    tune(request)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
