"""`pip install .[device]` gives a Raspberry-Pi-style install: device_sim runs bundles without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from bundle_fixtures import tiny_int8_model, write_tiny_bundle

REPO = Path(__file__).resolve().parents[1]

DEVICE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import device_sim, device_sim.bundle, device_sim.interpreter, device_sim.features
    import device_sim.tasks, device_sim.sources
    from device_sim.bundle import load_bundle
    from device_sim.interpreter import Int8Model

    bundle = load_bundle(sys.argv[1])
    model = Int8Model.from_bundle(bundle)
    out = model.predict(np.linspace(-1, 1, 8).astype(np.float32))
    assert out.shape == (3,), out.shape
    import importlib.util
    assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed"
    assert "tensorflow" not in sys.modules
    print("backend", model.backend, "output", out.tolist())
    """
)


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("device-venv")
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{REPO}[device]"],
        check=True,
        timeout=600,
    )
    return python


def test_device_extra_runs_a_bundle_without_tensorflow(device_venv: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    write_tiny_bundle(bundle_dir, tiny_int8_model())
    result = subprocess.run(
        [str(device_venv), "-c", DEVICE_SCRIPT, str(bundle_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repo: import the installed package, not the source tree
    )
    assert result.returncode == 0, result.stderr
    assert "backend ai-edge-litert" in result.stdout


def test_device_extra_has_no_training_dependencies(device_venv: Path) -> None:
    listing = subprocess.run(
        [str(device_venv), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for heavy in ("tensorflow", "tf-keras", "keras", "scikit-learn", "matplotlib"):
        assert f"\n{heavy}==" not in f"\n{listing}", f"{heavy} was installed by the device extra"
    assert "paho-mqtt==2." in listing
    assert sys.version_info >= (3, 10)
