"""The KWS model: a DS-CNN (Zhang et al. 2017, "Hello Edge"; the MLPerf Tiny KWS reference)."""

from __future__ import annotations

from typing import Any


def ds_cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    width: int = 48,
    depth: int = 4,
    *,
    first_kernel: tuple[int, int] = (10, 4),
    first_stride: tuple[int, int] = (2, 2),
    dropout: float = 0.2,
) -> Any:
    """A DS-CNN: strided conv, ``depth`` depthwise-separable blocks of ``width`` channels, softmax.

    Convolutions have no bias because batch norm follows; the converter folds BN into them, so the
    int8 graph is CONV/DEPTHWISE_CONV/AVERAGE_POOL/FULLY_CONNECTED/SOFTMAX — all in TFLM.
    """
    from training.keras_env import keras

    layers = keras.layers
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, first_kernel, strides=first_stride, padding="same", use_bias=False)(
        inputs
    )
    x = layers.ReLU()(layers.BatchNormalization()(x))
    if dropout:
        x = layers.Dropout(dropout)(x)
    for _ in range(depth):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(width, (1, 1), use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(n) for n in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"ds_cnn_w{width}_d{depth}")
