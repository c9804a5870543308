"""MACs per inference of a trained Keras model, counted by the one counter of the project.

The model is converted in memory to a float ``.tflite`` graph (batch norm folded into the
convolutions, dropout gone — the graph the int8 export will have) and counted by
:func:`device_sim.model_graph.count_macs`, the counter the quantize report and the firmware profile
use, so training's budget check and ``tinyfleet profile`` report the same number.
"""

from __future__ import annotations

from typing import Any

from device_sim import console
from device_sim.model_graph import count_macs, read_model


def keras_macs(model: Any) -> int:
    """Multiply-accumulates of one inference of ``model`` (a ``tf_keras.Model``)."""
    from training.keras_env import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with console.native_output_quiet():  # the converter's C++ logs
        model_bytes = bytes(converter.convert())
    return count_macs(read_model(model_bytes))
