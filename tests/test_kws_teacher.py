"""The KWS teacher: speaker-disjoint folds, out-of-fold soft labels, fresh augmentation, embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.errors import ConfigError
from device_sim.sources.wav_io import write_wav
from training.distill import Teacher, blend_soft_labels
from training.kws.speech_commands import scan_folder
from training.kws.teacher import out_of_fold_probabilities


def _folder(root: Path, speakers: int = 23) -> Path:
    for word in ("yes", "no", "up"):
        for s in range(speakers):
            for n in range(2):
                write_wav(root / word / f"{s:08x}_nohash_{n}.wav", np.full(16000, 0.01), 16000)
    return root


def test_k_folds_are_speaker_disjoint_and_test_every_clip_exactly_once(tmp_path):
    from training.kws import split_by_fold

    folder = scan_folder(_folder(tmp_path))
    tested: list[Path] = []
    for fold in range(5):
        train, test = split_by_fold(folder.clips, 5, fold)
        assert not {c.speaker for c in train} & {c.speaker for c in test}
        assert len(train) + len(test) == len(folder.clips)
        tested += [c.path for c in test]
    assert sorted(tested) == sorted(c.path for c in folder.clips)
    assert split_by_fold(folder.clips, 5, 2) == split_by_fold(folder.clips, 5, 2)  # seeded


def test_teacher_soft_labels_come_from_heads_that_never_heard_the_speaker():
    # Each speaker has a unique fingerprint in the embedding and one random label: a head scoring
    # its own training speakers would recall them perfectly; out of fold it can only guess.
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(60), 4)
    labels = rng.integers(0, 3, 60)[speakers]
    fingerprints = rng.standard_normal((60, 96)) * 5
    embeddings = np.repeat(fingerprints[speakers][:, None, :], 16, axis=1).astype(np.float32)
    probabilities = out_of_fold_probabilities(embeddings, labels, speakers.astype(str), 12)
    assert probabilities.shape == (240, 12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(np.argmax(probabilities, 1) == labels) < 0.6


def test_teacher_soft_labels_follow_a_signal_shared_across_speakers():
    rng = np.random.default_rng(1)
    speakers = np.repeat(np.arange(40), 6)
    labels = rng.integers(0, 4, len(speakers))
    embeddings = rng.standard_normal((len(speakers), 16, 96)).astype(np.float32)
    embeddings[np.arange(len(labels)), :, labels] += 4.0
    probabilities = out_of_fold_probabilities(embeddings, labels, speakers.astype(str), 12)
    assert np.mean(np.argmax(probabilities, 1) == labels) > 0.9


def test_blend_mixes_softened_teacher_with_hard_labels():
    teacher_p = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]], np.float32)
    y = np.array([1, 1])
    only_labels = blend_soft_labels(teacher_p, y, Teacher(Path("t"), 2.0, 0.0), 3)
    np.testing.assert_allclose(only_labels, np.eye(3)[y])
    blended = blend_soft_labels(teacher_p, y, Teacher(Path("t"), 2.0, 0.5), 3)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0, atol=1e-6)
    assert 0.05 < blended[0, 0] < 0.5  # the teacher's (softened) view survives the blend


def test_fresh_augmentation_draws_new_examples_every_epoch():
    pytest.importorskip("tf_keras")
    from training.kws.epochs import EpochSource, FreshAugmentation

    targets = np.array([0, 1, 2])

    def make_features(rng):
        rows = np.array([0, 1, 2, 0, 1, 2])
        return rows[:, None] * 10.0 + rng.standard_normal((6, 1)), rows

    sequence = FreshAugmentation(EpochSource(make_features, targets, lambda x: x), 4, seed=0)
    assert len(sequence) == 2
    first = np.concatenate([sequence[0][0], sequence[1][0]])
    labels = np.concatenate([sequence[0][1], sequence[1][1]])
    np.testing.assert_array_equal(np.round(first[:, 0] / 10.0), labels)  # targets follow rows
    sequence.on_epoch_end()
    second = np.concatenate([sequence[0][0], sequence[1][0]])
    assert not np.allclose(np.sort(first, axis=0), np.sort(second, axis=0))


def test_speech_embedding_gives_sixteen_96d_vectors_per_second():
    pytest.importorskip("ai_edge_litert")
    from training.kws.speech_embedding import SpeechEmbedding, model_dir

    try:
        model_dir()
    except ConfigError as error:
        assert "openwakeword==0.5.1" in str(error)
        pytest.skip("needs openwakeword==0.5.1 (the train extra) for the embedding weights")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 16000))).astype(np.float32)
    vectors = SpeechEmbedding.load()(audio)
    assert vectors.shape == (2, 16, 96)
    assert np.all(np.isfinite(vectors)) and not np.allclose(vectors[0], vectors[1])


def test_the_final_model_trains_on_every_speaker_and_folds_hold_speakers_out(tmp_path):
    from device_sim.features.audio import default_config
    from training.kws import PRESETS, build_dataset
    from training.stage import TrainOptions

    root = _folder(tmp_path)
    total = len(scan_folder(root).clips)
    frontend = default_config("mfcc").build()

    def described(**knobs):
        options = TrainOptions(data=root, preset="quick", hyperparameters=tuple(knobs.items()))
        data = build_dataset(
            options, frontend, lambda name: options.knob(name, PRESETS["quick"][name])
        )
        return data

    final = described(holdout=0, copies=1)
    assert final.description["train_clips"] == total
    assert final.description["train_speakers"] == 23
    held_out = described(copies=1)
    assert held_out.description["train_clips"] < total
    fold = described(folds=5, fold=1, copies=1)
    assert fold.description["train_speakers"] + fold.description["test_speakers"] == 23
    features, rows = fold.make_features(np.random.default_rng(0))
    assert features.shape[1:] == frontend.feature_shape and len(features) == len(rows)
    again, _ = fold.make_features(np.random.default_rng(1))
    assert not np.allclose(features, again)  # a new draw is a new augmentation


def test_shared_standardisation_keeps_mfcc_c0_wider_than_the_other_coefficients():
    from device_sim.features.audio import default_config
    from training.kws.features import standardized

    rng = np.random.default_rng(0)
    spread = np.array([20.0, 4.0, 2.0, 2.0, 1.5, 1.3, 1.2, 1.0, 1.0, 0.9])
    raw = (rng.standard_normal((64, 49, 10)) * spread - 5.0)[..., np.newaxis].astype(np.float32)
    config = default_config("mfcc")
    shared = standardized(config, raw, "shared").build().normalize(raw)[..., 0]
    per_coefficient = standardized(config, raw, "per-coefficient").build().normalize(raw)[..., 0]
    assert np.allclose(shared.mean(axis=(0, 1)), 0.0, atol=1e-3)
    assert shared[..., 0].std() > 5 * shared[..., 9].std()  # c0 keeps its larger spread
    assert np.allclose(per_coefficient.std(axis=(0, 1)), 1.0, atol=1e-2)
    assert standardized(config, raw, "none") == config
