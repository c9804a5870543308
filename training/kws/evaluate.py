"""KWS metrics (accuracy headline, per label, confusion) and ``tinyfleet evaluate`` on a folder."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle
from device_sim.errors import DataError
from device_sim.features.audio import AudioFeatureConfig
from training.kws.features import label_indices, silence_features, synth_eval_features
from training.kws.presets import PRESETS
from training.kws.speech_commands import (
    KEYWORDS,
    LABELS,
    SILENCE,
    UNKNOWN,
    cap_per_label,
    load_background,
    load_clips,
    scan_folder,
)
from training.kws.synth_speech import SynthPlan, load_or_synthesize
from training.stage import TrainOptions


def score(
    predict: Callable[[np.ndarray], np.ndarray], evaluation: dict[str, np.ndarray], head: dict
) -> dict[str, Any]:
    """Top-1 accuracy (headline), per-label accuracy (recall), count and confusion matrix.

    ``confusion[i][j]`` counts clips of label ``i`` predicted as label ``j``.
    """
    labels = list(head["labels"])
    y = np.asarray(evaluation["y"], dtype=np.int64)
    if len(y) == 0:
        raise DataError("no evaluation clips: nothing to score")
    predicted = np.argmax(np.asarray(predict(evaluation["x"])), axis=-1)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class = {
        label: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(np.trace(confusion) / len(y)),
        "per_class": per_class,
        "n": int(len(y)),
        "confusion": confusion.tolist(),
    }


def evaluation_set(
    config: AudioFeatureConfig, data: Path | None, seed: int
) -> tuple[dict[str, np.ndarray], str]:
    """Clean features + labels to evaluate a bundle on, and a description.

    A folder with ``testing_list.txt`` is evaluated on its testing split; any other folder on all
    its clips (it is someone else's held-out data). Unknown words are capped at 1.5x the mean
    keyword count, as in training. Without ``_silence_`` clips, silence is cut
    from its background recordings. Without a folder: held-out synthetic voices.
    """
    frontend = config.build()
    rng = np.random.default_rng(seed)
    if data is None:
        corpus = load_or_synthesize(SynthPlan(**_quick_synth_kwargs(), seed=0))
        _, test = corpus.split()
        x = synth_eval_features(test, frontend, rng)
        y = label_indices(test.labels)
        n_silence = max(1, len(test.audio) // 12)
        x = np.concatenate([x, silence_features(n_silence, frontend, rng, None)])
        y = np.concatenate([y, np.full(n_silence, LABELS.index(SILENCE))])
        return {"x": x, "y": y}, "held-out synthetic voices"
    folder = scan_folder(data)
    clips = folder.split("testing") if folder.official_split else folder.clips
    # as in training: a full download's test list is ~40 % unknown words, which would swamp the
    # keyword figures; keep at most 1.5x the mean keyword count (seeded)
    per_keyword = [n for label, n in Counter(c.label for c in clips).items() if label in KEYWORDS]
    clips = cap_per_label(clips, UNKNOWN, int(1.5 * np.mean(per_keyword)) + 1, seed)
    audio, y = load_clips(clips)
    x = frontend.batch(audio.astype(np.float32) / 32768.0)
    if not np.any(y == LABELS.index(SILENCE)) and folder.background:
        noises = load_background(folder.background)
        n_silence = max(1, len(clips) // 11)
        x = np.concatenate([x, silence_features(n_silence, frontend, rng, noises)])
        y = np.concatenate([y, np.full(n_silence, LABELS.index(SILENCE))])
    where = "testing split" if folder.official_split else "all clips"
    return {"x": x, "y": y}, f"{data} ({where})"


def _quick_synth_kwargs() -> dict[str, int]:
    quick = PRESETS["quick"]
    return {
        "keyword_renditions": quick["keyword_renditions"],
        "unknown_renditions": quick["unknown_renditions"],
    }


def evaluate(bundle: Bundle, data: Path | None, options: TrainOptions) -> dict[str, Any]:
    """``tinyfleet evaluate``: the bundle's int8 model on ``data``; writes a confusion-matrix PNG."""
    from device_sim.features import feature_config_from_dict
    from device_sim.interpreter import Int8Model

    config = feature_config_from_dict(bundle.feature_config)
    if not isinstance(config, AudioFeatureConfig):
        raise DataError(f"{bundle.directory} is not an audio (kws) bundle")
    evaluation, described = evaluation_set(config, data, options.seed)
    model = Int8Model.from_bundle(bundle)
    result = score(model.predict_batch, evaluation, bundle.head)
    png = bundle.directory / "confusion_matrix.png"
    plot_confusion(np.array(result["confusion"]), list(bundle.head["labels"]), png, described)
    return {**result, "labels": list(bundle.head["labels"]), "data": described, "plot": str(png)}


def plot_confusion(confusion: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true label per row) with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(confusion) / max(1, confusion.sum())
    ax.set_title(f"KWS int8: {accuracy:.1%} on {confusion.sum()} clips\n{title}", fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if confusion[i, j]:
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=color
                )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
