"""Datasets, Keras models, training and pruning for the three micromodels.

Models are built with ``tf_keras`` (Keras 2) because tensorflow-model-optimization does not support
Keras 3; import Keras only through :mod:`training.keras_env`, which sets ``TF_USE_LEGACY_KERAS=1``
before TensorFlow is first imported.
"""
