"""The air-quality model: a small dense net over the flattened window of inputs."""

from __future__ import annotations


def window_mlp(
    n_features: int, n_targets: int, *, width: int = 32, depth: int = 2, input_noise: float = 0.0
):
    """A small dense net over the flattened window: ``depth`` ReLU layers of ``width`` units.

    ``input_noise`` (σ in normalised units) adds Gaussian noise to the features while training only
    (it is no layer of the int8 model): a regulariser against slow sensor drift.
    """
    from training.keras_env import keras

    inputs = keras.Input(shape=(n_features,), name="window")
    x = inputs
    if input_noise > 0:
        x = keras.layers.GaussianNoise(input_noise, name="drift_noise")(x)
    for i in range(depth):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(n_targets, name="z_scores")(x)
    return keras.Model(inputs, outputs, name="air_quality_mlp")
