"""The vibration model: a small dense autoencoder over one window's features."""

from __future__ import annotations


def dense_autoencoder(n_features: int, width: int = 32, bottleneck: int = 8):
    """``n → width → width/2 → bottleneck → width/2 → width → n`` ReLU autoencoder, linear output.

    Dense layers only: every TFLM build has them, and at ~60 features the int8 model is a few KB.
    """
    from training.keras_env import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    x = keras.layers.Dense(width, activation="relu", name="enc1")(inputs)
    x = keras.layers.Dense(max(width // 2, bottleneck), activation="relu", name="enc2")(x)
    x = keras.layers.Dense(bottleneck, activation="relu", name="code")(x)
    x = keras.layers.Dense(max(width // 2, bottleneck), activation="relu", name="dec2")(x)
    x = keras.layers.Dense(width, activation="relu", name="dec1")(x)
    outputs = keras.layers.Dense(n_features, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="vibration_autoencoder")
