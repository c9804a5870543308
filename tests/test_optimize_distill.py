"""Knowledge distillation through the shared fit loop, with real Keras teachers and an int8 teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.errors import ConfigError

N_FEATURES, N_CLASSES = 6, 3


def _blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs: a classification task a tiny dense net learns in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    centres = rng.normal(0, 2.0, (N_CLASSES, N_FEATURES))
    return (centres[y] + rng.normal(0, 1.0, (n, N_FEATURES))).astype(np.float32), y


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory) -> Path:
    """A trained softmax teacher saved as .keras (what `train` writes as float_model.keras)."""
    from training.keras_env import keras, seed_everything

    seed_everything(0)
    x, y = _blobs()
    model = keras.Sequential(
        [
            keras.layers.Input((N_FEATURES,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=15, verbose=0)
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    model.save(path)
    return path


def _student():
    from training.keras_env import keras

    return keras.Sequential(
        [
            keras.layers.Input((N_FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )


def test_soft_targets_blend_teacher_and_labels_and_switch_to_categorical_loss(teacher_file):
    from training.distill import Teacher, distillation_targets
    from training.keras_env import keras

    x, y = _blobs()
    validation = (x[:20], y[:20])
    out = distillation_targets(
        Teacher(teacher_file, temperature=2.0, weight=0.5),
        x,
        y,
        "sparse_categorical_crossentropy",
        validation,
        ["accuracy"],
    )
    assert out.y.shape == (len(x), N_CLASSES)
    np.testing.assert_allclose(out.y.sum(axis=1), 1.0, atol=1e-5)
    # half of every target is the true one-hot label, so the true class keeps >= 0.5
    assert np.all(out.y[np.arange(len(y)), y] >= 0.5 - 1e-6)
    assert isinstance(out.loss, keras.losses.CategoricalCrossentropy)
    np.testing.assert_array_equal(out.validation[1], np.eye(N_CLASSES)[y[:20]])

    labels_only = distillation_targets(
        Teacher(teacher_file, weight=0.0), x, y, "sparse_categorical_crossentropy"
    )
    np.testing.assert_array_equal(labels_only.y, np.eye(N_CLASSES)[y])
    teacher_only = distillation_targets(
        Teacher(teacher_file, temperature=1.0, weight=1.0), x, y, "sparse_categorical_crossentropy"
    )
    model = keras.models.load_model(teacher_file, compile=False)
    np.testing.assert_allclose(teacher_only.y, model.predict(x, verbose=0), atol=1e-4)
    softer = distillation_targets(
        Teacher(teacher_file, temperature=4.0, weight=1.0), x, y, "sparse_categorical_crossentropy"
    )
    assert softer.y.max(axis=1).mean() < teacher_only.y.max(axis=1).mean()  # T flattens


def test_fit_pruned_trains_a_student_from_a_teacher_with_sparse_labels_and_validation(teacher_file):
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import seed_everything
    from training.pruning import PruningPlan

    seed_everything(1)
    x, y = _blobs()
    result = fit_pruned(
        _student(),
        x,
        y,
        FitPlan(epochs=8, batch_size=32, learning_rate=1e-2, pruning=PruningPlan(0.3)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        validation=(x[:40], y[:40]),
        teacher=teacher_file,
    )
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(result.history)
    accuracy = float(np.mean(np.argmax(result.model.predict(x, verbose=0), axis=1) == y))
    assert accuracy > 0.8, accuracy


def test_regression_student_matches_teacher_outputs_without_mixing_target_units(tmp_path):
    from training.distill import Teacher, distillation_targets
    from training.keras_env import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = 1000.0 * x[:, :2]  # targets in other units than the outputs (decoded inside the loss)
    teacher = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)])
    teacher.save(tmp_path / "t.keras")
    t = teacher.predict(x, verbose=0)
    y_pred = rng.normal(size=(50, 2)).astype(np.float32)

    def decoded_mae(y_true, y_pred):  # a custom task loss, like air quality's masked MAE
        return keras.backend.mean(keras.backend.abs(y_true / 1000.0 - y_pred), axis=-1)

    for weight in (0.0, 0.3, 1.0):
        out = distillation_targets(
            Teacher(tmp_path / "t.keras", weight=weight), x, y, decoded_mae, (x[:10], y[:10])
        )
        assert out.y.shape == (50, 4) and out.validation[1].shape == (10, 4)
        np.testing.assert_array_equal(out.y[:, :2], y)  # the truth is kept, not blended
        expected = (1 - weight) * np.mean(np.abs(y / 1000.0 - y_pred), axis=-1) + weight * np.mean(
            (y_pred - t) ** 2, axis=-1
        )
        np.testing.assert_allclose(out.loss(out.y, y_pred).numpy(), expected, rtol=1e-5)


def test_fit_pruned_distils_an_autoencoder_with_metrics_on_the_true_targets(tmp_path):
    from training.fit import FitPlan, fit_pruned
    from training.keras_env import keras

    x = np.random.default_rng(0).normal(size=(128, 6)).astype(np.float32)
    teacher = keras.Sequential([keras.layers.Input((6,)), keras.layers.Dense(6)])
    teacher.save(tmp_path / "ae.keras")
    student = keras.Sequential(
        [keras.layers.Input((6,)), keras.layers.Dense(3), keras.layers.Dense(6)]
    )
    result = fit_pruned(
        student,
        x,
        x,
        FitPlan(epochs=2, batch_size=32, pruning=None),
        loss="mse",
        metrics=["mae"],
        validation=(x[:16], x[:16]),
        teacher=tmp_path / "ae.keras",
    )
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(result.history)
    assert result.model.output_shape == (None, 6)


def test_an_int8_bundle_without_float_model_teaches_through_the_tflite_interpreter(tmp_path):
    from bundle_fixtures import tiny_int8_model, write_tiny_bundle

    from device_sim.interpreter import Int8Model
    from training.distill import Teacher, distillation_targets

    model_bytes = tiny_int8_model(n_inputs=8, n_outputs=3)
    write_tiny_bundle(tmp_path / "bundle", model_bytes)
    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    y = np.zeros((30, 3), np.float32)
    out = distillation_targets(Teacher(tmp_path / "bundle", weight=1.0), x, y, "mse")
    np.testing.assert_allclose(out.y[:, 3:], Int8Model(model_bytes).predict_batch(x), atol=1e-6)


def test_bad_teachers_raise_errors_that_say_what_to_pass(tmp_path, teacher_file):
    from training.distill import Teacher, distillation_targets

    x, y = _blobs(20)
    with pytest.raises(ConfigError, match="does not exist"):
        distillation_targets(tmp_path / "nope", x, y, "mse")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither float_model.keras nor model.tflite"):
        distillation_targets(tmp_path / "empty", x, y, "mse")
    with pytest.raises(ConfigError, match="same feature config"):
        distillation_targets(teacher_file, x[:, :4], y, "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="same label set"):
        distillation_targets(teacher_file, x, y + 5, "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="distill_weight"):
        Teacher(teacher_file, weight=1.5)


def test_knobs_reach_the_teacher_and_provenance_still_reads_a_path(teacher_file):
    from training.distill import Teacher, teacher_from_options
    from training.stage import TrainOptions

    options = TrainOptions(
        teacher=teacher_file,
        hyperparameters=(("distill_temperature", 4.0), ("distill_weight", 0.8)),
    )
    resolved = teacher_from_options(options).teacher
    assert isinstance(resolved, Teacher)
    assert (resolved.temperature, resolved.weight) == (4.0, 0.8)
    assert str(resolved) == str(teacher_file) and Path(resolved) == teacher_file
    assert teacher_from_options(TrainOptions()).teacher is None
