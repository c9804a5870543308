"""KWS on unseen speakers, honestly: speaker-disjoint k-fold over a Speech Commands-style folder.

Each variant trains ``folds`` float models (one per held-out group of speakers, seeded split) and
reports mean ± std of the held-out accuracy; int8 stays within ~1 point of float (docs/kws.md),
so folds skip quantization to save CPU. Variants are the ablation rows of docs/kws.md:

    .venv/bin/python benchmarks/kws_kfold.py --variants fresh teacher --epochs 12 --out log.jsonl

The teacher's own k-fold figure (logistic regression on cached speech embeddings) is ``--teacher-only``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))
# name -> (hyperparameter overrides, teacher)
VARIANTS: dict[str, tuple[dict, str | None]] = {
    "fixed": ({"fresh_augmentation": 0}, None),
    "fresh": ({}, None),
    "teacher": ({}, "speech-embedding"),
    "teacher-strong-noise": (
        {"augment": {"noise_probability": 0.8, "snr_db": (-5.0, 20.0)}},
        "speech-embedding",
    ),
    "teacher-no-specaugment": ({"augment": {"mask_probability": 0.0}}, "speech-embedding"),
}


def run_fold(variant: str, fold: int, folds: int, preset: str, extra: dict, seed: int) -> dict:
    from training import kws
    from training.stage import TrainOptions

    overrides, teacher = VARIANTS[variant]
    knobs = {**overrides, **extra, "folds": folds, "fold": fold}
    options = TrainOptions(
        data=DEV,
        preset=preset,
        seed=seed,
        teacher=Path(teacher) if teacher else None,
        hyperparameters=tuple(knobs.items()),
    )
    started = time.perf_counter()
    trained = kws.train(options)
    return {
        "variant": variant,
        "fold": fold,
        "folds": folds,
        "preset": preset,
        "knobs": {k: v for k, v in knobs.items()},
        "float_accuracy": round(trained.metrics_float["accuracy"], 4),
        "n": trained.metrics_float["n"],
        "teacher_agreement": trained.provenance["data"].get("teacher_agreement"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def teacher_only(folds: int, seed: int) -> dict:
    """Logistic regression on pooled speech embeddings, the same speaker folds."""
    from device_sim.sources.kws_speech_synth import cache_dir
    from training.kws import split_by_fold
    from training.kws.speech_commands import LABELS, load_clips, scan_folder
    from training.kws.speech_embedding import cached_embeddings
    from training.kws.teacher import EmbeddingHead, pooled

    folder = scan_folder(DEV)
    audio, labels = load_clips(folder.clips)
    features = pooled(cached_embeddings(audio, cache_dir().parent / "kws-embeddings"))
    index = {clip.path: i for i, clip in enumerate(folder.clips)}
    scores = []
    for fold in range(folds):
        train, test = split_by_fold(folder.clips, folds, fold)
        tr = [index[c.path] for c in train]
        te = [index[c.path] for c in test]
        head = EmbeddingHead().fit(features[tr], labels[tr], len(LABELS))
        scores.append(float(np.mean(np.argmax(head(features[te]), 1) == labels[te])))
    return {
        "variant": "teacher-head-only",
        "folds": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["fresh"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="+", help="run just these fold indices")
    parser.add_argument("--preset", choices=("quick", "full"), default="full")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (lean ablations)")
    parser.add_argument("--copies", type=int, help="override augmented passes per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--knob", nargs="*", default=[], help="any preset knob as name=JSON, e.g. sparsity=0.0"
    )
    parser.add_argument("--teacher-only", action="store_true")
    parser.add_argument("--out", type=Path, help="append one JSON line per fold here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.teacher_only:
        print(json.dumps(teacher_only(args.folds, args.seed)))
        return 0
    extra = {}
    if args.epochs:
        extra["epochs"] = args.epochs
    if args.copies:
        extra["copies"] = args.copies
    for item in args.knob:
        name, value = item.split("=", 1)
        extra[name] = json.loads(value)
    for variant in args.variants:
        accuracies = []
        for fold in args.only_folds or range(args.folds):
            row = run_fold(variant, fold, args.folds, args.preset, extra, args.seed)
            accuracies.append(row["float_accuracy"])
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as handle:
                    handle.write(line + "\n")
        print(
            f"{variant}: {np.mean(accuracies):.4f} ± {np.std(accuracies):.4f} over "
            f"{len(accuracies)} folds",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
