"""What a person sees when a command runs without a terminal: no TensorFlow C++ logs, no INFO
records, converter chatter gone, progress as plain lines — and all of it back with ``-v``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.fleet_fixtures import REPO

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]

NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]", re.MULTILINE)
INFO_RECORD = re.compile(r"^\S+ \S+ INFO ", re.MULTILINE)


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    """A tiny trained (not yet quantized) vibration model folder, as `tinyfleet train` leaves it."""
    from optimize_fixtures import small_vibration_folder

    from training import vibration
    from training.stage import TrainOptions

    root = tmp_path_factory.mktemp("quiet")
    data = small_vibration_folder(root / "data", sample_rate=1600.0)
    knobs = (("epochs", 2), ("width", 8), ("bottleneck", 4), ("n_bands", 8), ("kmeans_clusters", 2))
    trained = vibration.train(TrainOptions(data=data, sample_rate=1600.0, hyperparameters=knobs))
    return trained.save(root / "trained")


def _quantize(folder, out, *flags: str) -> subprocess.CompletedProcess[str]:
    """`tinyfleet [flags] quantize` in a subprocess with pipes (not a terminal), as CI runs it."""
    argv = [sys.executable, "-m", "tinyfleet.cli", *flags, "quantize", "--bundle", str(folder)]
    return subprocess.run(
        [*argv, "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_quantize_without_a_terminal_prints_progress_lines_and_no_native_logs(
    trained_folder, tmp_path
):
    quiet = _quantize(trained_folder, tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    result = json.loads(quiet.stdout)  # stdout holds exactly the JSON object
    assert result["bundle"].endswith("quiet")
    assert not NATIVE_LOG.search(quiet.stderr), quiet.stderr[:3000]
    assert not INFO_RECORD.search(quiet.stderr), quiet.stderr[:3000]
    for chatter in ("absl::InitializeLog", "fully_quantize", "oneDNN", "cuInit", "\r"):
        assert chatter not in quiet.stderr, chatter
    assert "int8 conversion: calibrating: done" in quiet.stderr  # progress, as plain lines
    assert len(quiet.stderr.splitlines()) <= 10, quiet.stderr

    # -v brings the records (and TensorFlow's own start-up logs) back: the filter is what hid them
    loud = _quantize(trained_folder, tmp_path / "loud", "-v")
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert INFO_RECORD.search(loud.stderr) and NATIVE_LOG.search(loud.stderr), loud.stderr[:3000]
