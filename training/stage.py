"""The output of the training stage: a float (pruned, stripped) model plus what quantization needs.

``tinyfleet train`` writes it into the bundle folder (``float_model.keras``, ``calibration.npz``,
``evaluation.npz``, ``trained.json``); ``tinyfleet quantize`` reads it and writes ``model.tflite`` and
``bundle.json`` next to it. Keeping the held-out evaluation set in the folder lets the quantize stage
measure float vs int8 on exactly the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import jsonable
from device_sim.errors import BundleError
from device_sim.features import FeatureConfig, feature_config_from_dict

FLOAT_MODEL_FILE = "float_model.keras"
CALIBRATION_FILE = "calibration.npz"
EVALUATION_FILE = "evaluation.npz"
TRAINED_FILE = "trained.json"


@dataclass(frozen=True)
class TrainOptions:
    """What ``tinyfleet train/build`` was asked for. Task-specific knobs are optional fields."""

    data: Path | None = None
    preset: str = "quick"
    seed: int = 0
    sample_rate: float | None = None  # Hz of user recordings whose files do not say
    synth: bool = False  # KWS: add the synthesized corpus to real data
    channel: str | None = None  # vibration: which channel/variable of a recording to use
    column_map: tuple[tuple[str, str], ...] = ()  # air quality: generic CSV column → canonical name
    teacher: Path | None = None  # distillation: a teacher bundle or Keras model
    # Overrides of the preset's knobs by name (width, depth, n_mels, learning_rate, sparsity …),
    # used by `tinyfleet tune`; each task documents the names it understands in SEARCH_SPACE.
    hyperparameters: tuple[tuple[str, Any], ...] = ()

    def knob(self, name: str, default: Any) -> Any:
        """The value of a tunable knob: the override if given, else the preset's default."""
        return dict(self.hyperparameters).get(name, default)

    def __post_init__(self) -> None:
        if self.preset not in ("quick", "full"):
            raise ValueError(f"preset must be 'quick' or 'full', not {self.preset!r}")


@dataclass
class TrainedModel:
    """A trained float model and everything the later stages need, task-independent.

    ``evaluation`` holds held-out inputs under ``"x"`` plus the task's targets (labels, anomaly
    flags, reference concentrations …) under names the task's ``score`` function understands.
    """

    task: str
    name: str
    model: Any  # tf_keras.Model; typed loosely so this module imports without TensorFlow
    feature_config: FeatureConfig
    head: dict[str, Any]
    representative: np.ndarray
    evaluation: dict[str, np.ndarray]
    metrics_float: dict[str, Any] = field(default_factory=dict)
    sparsity: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / FLOAT_MODEL_FILE)
        np.savez_compressed(directory / CALIBRATION_FILE, x=self.representative.astype(np.float32))
        np.savez_compressed(directory / EVALUATION_FILE, **self.evaluation)
        manifest = {
            "task": self.task,
            "name": self.name,
            "feature_config": self.feature_config.to_dict(),
            "head": self.head,
            "metrics_float": self.metrics_float,
            "sparsity": self.sparsity,
            "provenance": self.provenance,
            "extra": self.extra,
        }
        (directory / TRAINED_FILE).write_text(
            json.dumps(jsonable(manifest), indent=2, allow_nan=False) + "\n"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TrainedModel:
        from training.keras_env import keras

        directory = Path(directory)
        manifest_path = directory / TRAINED_FILE
        if not manifest_path.is_file():
            raise BundleError(
                f"{manifest_path} is missing: run `tinyfleet train TASK --out {directory}` first"
            )
        manifest = json.loads(manifest_path.read_text())
        model = keras.models.load_model(directory / FLOAT_MODEL_FILE, compile=False)
        with np.load(directory / CALIBRATION_FILE) as calibration:
            representative = calibration["x"]
        with np.load(directory / EVALUATION_FILE) as evaluation:
            evaluation_arrays = {key: evaluation[key] for key in evaluation.files}
        return cls(
            task=manifest["task"],
            name=manifest["name"],
            model=model,
            feature_config=feature_config_from_dict(manifest["feature_config"]),
            head=manifest["head"],
            representative=representative,
            evaluation=evaluation_arrays,
            metrics_float=manifest.get("metrics_float", {}),
            sparsity=manifest.get("sparsity", {}),
            provenance=manifest.get("provenance", {}),
            extra=manifest.get("extra", {}),
        )
