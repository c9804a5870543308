"""Where the KWS recipe loses: a plain reference DS-CNN and one-factor swaps, speaker-disjoint k-fold.

Issue #13 quotes a plain recipe — tf.signal MFCC, a ~24 k-parameter DS-CNN, background noise +
time shift + gain, 60 epochs, no pruning — at 85.9 % float on unseen speakers, ~8 points above ours.
This script trains that reference on exactly the folds of ``benchmarks/kws_kfold.py``
(``training.kws.split_by_fold``, unknown words capped, cut background silence in each test fold) and
lets every factor be swapped for ours one at a time::

    python benchmarks/kws_reference.py                          # the plain reference (tf.signal)
    python benchmarks/kws_reference.py --frontend device        # our device front end instead
    python benchmarks/kws_reference.py --augment ours           # our AugmentPlan + SpecAugment
    python benchmarks/kws_reference.py --width 48 --sparsity 0.5 --int8

``--frontend device`` is ``device_sim.features.audio`` itself (numpy, ``--fe n_mels=40`` …
overrides); ``tf`` is MLPerf Tiny's tf.signal recipe (30/20 ms, 512-point FFT, 40 mel bands
20–4000 Hz, ln(·+1e-6), 10 MFCCs, no standardisation). Augmentation is drawn afresh every epoch.
Each fold appends a JSON line to ``--out``; the last line printed is mean ± std over the folds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))
SAMPLE_RATE = 16000


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str] | None) -> dict[str, Any]:
    return {k: _value(v) for k, v in (item.split("=", 1) for item in items or [])}


# ---------------------------------------------------------------- data (same folds as kws_kfold)


def fold_data(folder: Any, noises: list[np.ndarray], folds: int, fold: int, seed: int) -> dict:
    """Raw training/testing audio of one fold, built as ``training.kws.build_dataset`` builds it."""
    from training.kws import split_by_fold
    from training.kws.audio_augment import silence_clip
    from training.kws.speech_commands import (
        KEYWORDS,
        LABELS,
        SILENCE,
        UNKNOWN,
        cap_per_label,
        load_clips,
    )

    train, test = split_by_fold(folder.clips, folds, fold)
    mean = np.mean([n for lbl, n in Counter(c.label for c in train).items() if lbl in KEYWORDS])
    train = cap_per_label(train, UNKNOWN, int(1.5 * mean), seed)
    test_mean = np.mean([n for lbl, n in Counter(c.label for c in test).items() if lbl in KEYWORDS])
    test = cap_per_label(test, UNKNOWN, int(1.5 * test_mean) + 1, seed)
    x_train, y_train = load_clips(train)
    x_test, y_test = load_clips(test)
    silence = LABELS.index(SILENCE)
    n_silence = max(0, int(mean) - int(np.sum(y_train == silence)))
    n_test_silence = int(test_mean) - int(np.sum(y_test == silence))
    x_test = x_test.astype(np.float32) / 32768.0
    if n_test_silence > 0:
        rng = np.random.default_rng(seed + 1)
        cut = np.stack([silence_clip(rng, noises) for _ in range(n_test_silence)])
        x_test = np.concatenate([x_test, cut])
        y_test = np.concatenate([y_test, np.full(n_test_silence, silence)])
    return {
        "x_train": x_train.astype(np.float32) / 32768.0,
        "x_train_int16": x_train,
        "y_train": y_train,
        "speakers": np.array([c.speaker for c in train]),
        "n_silence": n_silence,
        "x_test": x_test,
        "y_test": y_test,
    }


# ---------------------------------------------------------------- front ends


class TfSignalMfcc:
    """MLPerf Tiny's front end in tf.signal (its ``get_dataset`` MFCC branch), no standardisation."""

    def __init__(self, fmax_hz: float = 4000.0, n_mels: int = 40, n_mfcc: int = 10) -> None:
        from training.keras_env import tf

        self.tf = tf
        matrix = tf.signal.linear_to_mel_weight_matrix(n_mels, 257, SAMPLE_RATE, 20.0, fmax_hz)

        @tf.function(reduce_retracing=True)
        def features(audio):
            stft = tf.signal.stft(audio, frame_length=480, frame_step=320, fft_length=512)
            mel = tf.tensordot(tf.abs(stft), matrix, 1)
            mfcc = tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + 1e-6))
            return mfcc[..., :n_mfcc, tf.newaxis]

        self._features = features

    def fit(self, features: np.ndarray) -> None:
        pass

    def raw(self, audio: np.ndarray) -> np.ndarray:
        out = [self._features(audio[i : i + 512]).numpy() for i in range(0, len(audio), 512)]
        return np.concatenate(out)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return features


class DeviceFrontEnd:
    """``device_sim.features.audio`` as training uses it: raw features, then the standardisation
    measured on the first epoch's training features (``norm=False`` skips it)."""

    def __init__(self, kind: str = "mfcc", norm: str = "per-coefficient", **overrides: Any) -> None:
        from device_sim.features.audio import default_config

        self.config = default_config(kind, **overrides)
        self.frontend = self.raw_frontend = self.config.build()
        self.norm = norm

    def fit(self, features: np.ndarray) -> None:
        from training.kws.features import standardized

        self.config = standardized(self.config, features, self.norm)
        self.frontend = self.config.build()

    def raw(self, audio: np.ndarray) -> np.ndarray:
        return self.raw_frontend.batch(audio)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return self.frontend.normalize(features)


# ---------------------------------------------------------------- augmentation


def plain_augment(
    audio: np.ndarray, rng: np.random.Generator, noises: list[np.ndarray], knobs: dict
) -> np.ndarray:
    """The reference's augmentation: shift ±100 ms, background noise (p 0.8, volume ≤ 0.1 of a
    unit-peak recording, as MLPerf/TF speech_commands), gain ±6 dB. Vectorised over clips."""
    n = len(audio)
    shift = int(knobs.get("shift_ms", 100) * SAMPLE_RATE / 1000)
    out = np.zeros_like(audio)
    offsets = rng.integers(-shift, shift + 1, n)
    for i, k in enumerate(offsets):
        if k >= 0:
            out[i, k:] = audio[i, : SAMPLE_RATE - k]
        else:
            out[i, :k] = audio[i, -k:]
    gain_db = knobs.get("gain_db", 6.0)
    out *= (10 ** (rng.uniform(-gain_db, gain_db, n) / 20)).astype(np.float32)[:, None]
    noisy = rng.random(n) < knobs.get("noise_p", 0.8)
    volume = rng.uniform(0, knobs.get("noise_volume", 0.1), n)
    for i in np.flatnonzero(noisy):
        source = noises[rng.integers(len(noises))]
        start = rng.integers(0, len(source) - SAMPLE_RATE + 1)
        out[i] += volume[i] * source[start : start + SAMPLE_RATE]
    return np.clip(out, -1, 1)


def our_augment(
    audio: np.ndarray, rng: np.random.Generator, noises: list[np.ndarray], plan: Any
) -> np.ndarray:
    from training.kws.audio_augment import augment_clip

    return np.stack([augment_clip(clip, rng, plan, noises) for clip in audio])


# ---------------------------------------------------------------- one fold


def run_fold(args: argparse.Namespace, data: dict, noises: list[np.ndarray], fold: int) -> dict:
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import keras, seed_everything
    from training.kws import ds_cnn
    from training.kws.audio_augment import AugmentPlan, silence_clip, spec_augment
    from training.kws.speech_commands import LABELS, SILENCE
    from training.macs import keras_macs
    from training.pruning import PruningPlan

    seed_everything(args.seed + fold)
    if args.frontend == "tf":
        frontend: Any = TfSignalMfcc(**_pairs(args.fe))
    else:
        norm = "none" if args.no_norm else args.norm
        frontend = DeviceFrontEnd(norm=norm, **_pairs(args.fe))
    plan = AugmentPlan(**_pairs(args.aug)) if args.augment == "ours" else None
    plain_knobs = _pairs(args.aug) if args.augment == "plain" else {}
    silence = LABELS.index(SILENCE)
    n_classes = len(LABELS)
    targets = data["y_train"]
    if args.teacher:
        targets = teacher_targets(data, args)
    rng = np.random.default_rng(args.seed + 7 + fold)

    def epoch() -> tuple[np.ndarray, np.ndarray]:
        parts, ys = [], []
        for _ in range(args.copies):
            if args.augment == "ours":
                audio = our_augment(data["x_train"], rng, noises, plan)
            elif args.augment == "plain":
                audio = plain_augment(data["x_train"], rng, noises, plain_knobs)
            else:
                audio = data["x_train"]
            feats = frontend.raw(audio)
            if plan is not None and plan.mask_probability > 0:
                feats = np.stack([spec_augment(f, rng, plan) for f in feats])
            parts.append(feats)
            ys.append(targets)
            if data["n_silence"]:
                cut = np.stack([silence_clip(rng, noises) for _ in range(data["n_silence"])])
                parts.append(frontend.raw(cut))
                extra = np.full(data["n_silence"], silence)
                ys.append(np.eye(n_classes, dtype=np.float32)[extra] if args.teacher else extra)
        return np.concatenate(parts), np.concatenate(ys)

    class Epochs(keras.utils.Sequence):
        def __init__(self, first: tuple[np.ndarray, np.ndarray]) -> None:
            super().__init__()
            self._set(*first)

        def _set(self, x: np.ndarray, y: np.ndarray) -> None:
            order = rng.permutation(len(y))
            self.x, self.y = frontend.normalize(x[order]).astype(np.float32), y[order]

        def __len__(self) -> int:
            return int(np.ceil(len(self.y) / args.batch_size))

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            s = slice(i * args.batch_size, (i + 1) * args.batch_size)
            return self.x[s], self.y[s]

        def on_epoch_end(self) -> None:
            self._set(*epoch())

    started = time.perf_counter()
    first = epoch()
    frontend.fit(first[0])
    x_test = frontend.normalize(frontend.raw(data["x_test"]))
    sequence = Epochs(first)
    model = ds_cnn(x_test.shape[1:], n_classes, args.width, args.depth, dropout=args.dropout)

    def rate(e: int, _lr: float) -> float:
        if args.schedule == "constant":
            return args.lr
        return float(
            args.lr
            * (args.lr_floor + (1 - args.lr_floor) * 0.5 * (1 + np.cos(np.pi * e / args.epochs)))
        )

    loss = "categorical_crossentropy" if args.teacher else "sparse_categorical_crossentropy"
    pruning = PruningPlan(target_sparsity=args.sparsity) if args.sparsity > 0 else None
    result = fit_pruned(
        model,
        sequence,
        None,
        FitPlan(args.epochs, args.batch_size, args.lr, pruning=pruning),
        loss=loss,
        metrics=["accuracy"],
        extra_callbacks=[keras.callbacks.LearningRateScheduler(rate)],
    )
    fit_seconds = time.perf_counter() - started
    predicted = np.argmax(result.model.predict(x_test, batch_size=256, verbose=0), axis=1)
    row = {
        "fold": fold,
        "float": round(float(np.mean(predicted == data["y_test"])), 4),
        "n_test": int(len(data["y_test"])),
        "train_acc": round(result.history["accuracy"][-1], 4),
        "params": int(result.model.count_params()),
        "macs": keras_macs(result.model),
        "sparsity": round(float(result.sparsity["overall"]), 3),
        "seconds": round(fit_seconds, 1),
    }
    if args.int8:
        from device_sim.interpreter import Int8Model
        from quantize.convert import to_int8_tflite

        representative = sequence.x[rng.permutation(len(sequence.x))[:300]]
        flatbuffer = to_int8_tflite(result.model, representative)
        probabilities = Int8Model(flatbuffer).predict_batch(x_test)
        row["int8"] = round(float(np.mean(np.argmax(probabilities, 1) == data["y_test"])), 4)
        row["tflite_bytes"] = len(flatbuffer)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"fold{fold}.tflite").write_bytes(flatbuffer)
    return row


def teacher_targets(data: dict, args: argparse.Namespace) -> np.ndarray:
    """Out-of-fold speech-embedding probabilities blended with one-hot labels (as ``--teacher
    speech-embedding`` in ``training.kws``)."""
    from device_sim.sources.kws_speech_synth import cache_dir
    from training.distill import Teacher, blend_soft_labels
    from training.kws.speech_commands import LABELS
    from training.kws.speech_embedding import cached_embeddings
    from training.kws.teacher import out_of_fold_probabilities

    embeddings = cached_embeddings(data["x_train_int16"], cache_dir().parent / "kws-embeddings")
    probabilities = out_of_fold_probabilities(
        embeddings, data["y_train"], data["speakers"], len(LABELS), seed=args.seed
    )
    teacher = Teacher(Path("speech-embedding"), args.temperature, args.distill_weight)
    return blend_soft_labels(probabilities, data["y_train"], teacher, len(LABELS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="reference")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frontend", choices=("tf", "device"), default="tf")
    parser.add_argument("--fe", nargs="*", help="front-end overrides, e.g. fmax_hz=8000 n_mels=40")
    parser.add_argument("--no-norm", action="store_true", help="= --norm none")
    parser.add_argument(
        "--norm",
        choices=("per-coefficient", "shared", "none"),
        default="per-coefficient",
        help="device front end standardisation",
    )
    parser.add_argument("--augment", choices=("plain", "ours", "none"), default="plain")
    parser.add_argument(
        "--aug",
        nargs="*",
        help="plain: noise_p, noise_volume, shift_ms, "
        "gain_db; ours: AugmentPlan fields, e.g. noise_probability=0.8",
    )
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-floor", type=float, default=0.0)
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--sparsity", type=float, default=0.0)
    parser.add_argument("--teacher", action="store_true", help="speech-embedding soft labels")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--distill-weight", type=float, default=0.5)
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--save", type=Path, help="write each fold's int8 .tflite here")
    parser.add_argument("--out", type=Path, default=Path("/work/cache/kws/runs.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from training.kws.speech_commands import load_background, scan_folder

    folder = scan_folder(DEV)
    noises = load_background(folder.background)
    rows = []
    for fold in args.only_folds or range(args.folds):
        data = fold_data(folder, noises, args.folds, fold, args.seed)
        row = {"label": args.label, **run_fold(args, data, noises, fold)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {"label": args.label, "argv": sys.argv[1:], "folds": len(rows)}
    for key in ("float", "int8"):
        values = [r[key] for r in rows if key in r]
        if values:
            summary[key] = f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"
            summary[f"{key}_per_fold"] = [round(100 * v, 1) for v in values]
    summary["seconds_per_fold"] = round(float(np.mean([r["seconds"] for r in rows])), 1)
    summary.update({k: rows[0][k] for k in ("params", "macs")})
    print(json.dumps(summary), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.write(json.dumps({"summary": summary}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
