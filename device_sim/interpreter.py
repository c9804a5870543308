"""Run an int8 TFLite model on the device, with the lightest interpreter that is installed.

Order: ``ai_edge_litert`` (LiteRT, the maintained runtime), ``tflite_runtime`` (no wheels for
Python >= 3.12), then ``tf.lite`` (only where TensorFlow happens to be installed, e.g. training hosts).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from device_sim.bundle import Bundle, QuantizedTensor, check_tflite_bytes
from device_sim.errors import BundleError, TinyfleetError

log = logging.getLogger(__name__)

MAX_BATCH = 64  # largest batch per invoke: beyond it the per-window cost no longer drops

_BACKENDS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def interpreter_backend() -> tuple[Any, str, Any]:
    """Return (Interpreter class, backend name, resolver type) of the first runtime that imports.

    The resolver type asks for the reference builtin kernels without default delegates: the
    XNNPACK delegate rounds int8 differently from TFLM (outputs up to 5 steps apart on KWS), while
    the builtin kernels match the microcontroller bit for bit, so the simulator tells the truth.
    """
    for module_name, label in _BACKENDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        resolver_enum = getattr(module, "OpResolverType", None)
        if resolver_enum is None and label == "tensorflow":
            resolver_enum = getattr(module.experimental, "OpResolverType", None)
        resolver = getattr(resolver_enum, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
        return module.Interpreter, label, resolver
    raise TinyfleetError(
        "no TFLite runtime is installed: `pip install 'tinyfleet[device]'` (ai-edge-litert), or "
        "tflite-runtime on Python < 3.12"
    )


def _tensor_spec(detail: dict[str, Any]) -> QuantizedTensor:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return QuantizedTensor(
        shape=tuple(int(n) for n in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


class Int8Model:
    """One int8 TFLite model with a single input and a single output tensor.

    ``predict`` takes real-valued features, quantizes them with the model's input scale, invokes,
    and dequantizes the output — exactly what firmware does around ``interpreter.Invoke()``.
    """

    def __init__(self, model: bytes | str | Path, *, num_threads: int = 1) -> None:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        check_tflite_bytes(data, "the model" if isinstance(model, bytes) else str(model))
        interpreter_cls, self.backend, resolver = interpreter_backend()
        options: dict[str, Any] = {"model_content": data, "num_threads": num_threads}
        if resolver is not None:
            options["experimental_op_resolver_type"] = resolver
        try:
            self._interpreter = interpreter_cls(**options)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"the TFLite runtime refused the model: {exc}; rebuild it") from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BundleError(
                f"expected a model with 1 input and 1 output, got {len(inputs)} and {len(outputs)}"
            )
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self.input_spec = _tensor_spec(inputs[0])
        self.output_spec = _tensor_spec(outputs[0])
        self._model_bytes = data
        self._num_threads = num_threads
        self._batched: dict[int, Any] = {}  # batch size → interpreter resized to it
        self._batchable = self.input_spec.shape[:1] == (1,)

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, num_threads: int = 1) -> Int8Model:
        """Load a bundle's model and check it agrees with what the manifest promises."""
        model = cls(bundle.model_bytes(), num_threads=num_threads)
        if model.input_spec.shape != bundle.input.shape:
            raise BundleError(
                f"{bundle.model_path} takes input shape {model.input_spec.shape} but bundle.json "
                f"says {bundle.input.shape}; rebuild the bundle"
            )
        return model

    def invoke_quantized(self, quantized: np.ndarray) -> np.ndarray:
        """Run the model on an already quantized input (with batch axis); returns the raw output."""
        expected = self.input_spec.shape
        if tuple(quantized.shape) != expected:
            raise BundleError(
                f"input shape {tuple(quantized.shape)} does not match the model's {expected}"
            )
        return self._invoke(quantized)

    def _invoke(self, quantized: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(
            self._input_index, quantized.astype(self.input_spec.dtype, copy=False)
        )
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index).copy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Real-valued features of one window (no batch axis) → real-valued output (no batch axis)."""
        batch_shape = self.input_spec.shape
        features = np.asarray(features, dtype=np.float32)
        if features.shape != batch_shape[1:]:
            raise BundleError(
                f"features have shape {features.shape}, the model expects {batch_shape[1:]}: the "
                "front-end config and the model disagree"
            )
        quantized = self.input_spec.quantize(features[np.newaxis])
        # the shape was checked above; invoke_quantized would check it again on the hot path
        return self.output_spec.dequantize(self._invoke(quantized))[0]

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        """Real-valued features of many windows ``(n, *feature shape)`` → outputs ``(n, ...)``.

        Each row gives exactly what :meth:`predict` gives for it (the builtin kernels compute
        every batch row on its own; tested bit for bit): the batch runs through interpreters
        resized to power-of-two batch sizes up to :data:`MAX_BATCH` (32 = 32, 37 = 32 + 4 + 1),
        so n windows cost a few invokes instead of n, and no padding is computed. Models whose
        graph pins the batch size at 1 fall back to one invoke per row.
        """
        features = np.asarray(features, dtype=np.float32)
        batch_shape = self.input_spec.shape
        if features.ndim != len(batch_shape) or features.shape[1:] != batch_shape[1:]:
            raise BundleError(
                f"features have shape {features.shape[1:]} per window, the model expects "
                f"{batch_shape[1:]}: the front-end config and the model disagree"
            )
        quantized = self.input_spec.quantize(features)
        outputs = []
        start = 0
        while start < len(quantized):
            size = min(MAX_BATCH, 1 << ((len(quantized) - start).bit_length() - 1))
            outputs.append(self._invoke_rows(quantized[start : start + size]))
            start += size
        if not outputs:
            return np.empty((0, *self.output_spec.shape[1:]), dtype=np.float32)
        return self.output_spec.dequantize(np.concatenate(outputs))

    def _invoke_rows(self, quantized: np.ndarray) -> np.ndarray:
        """Raw outputs for a power-of-two number of quantized rows."""
        rows = len(quantized)
        if rows == 1:
            return self._invoke(quantized)
        interpreter = self._batched.get(rows)
        if interpreter is None and self._batchable:
            interpreter = self._resized(rows)
        if interpreter is None:
            return np.concatenate([self._invoke(quantized[i : i + 1]) for i in range(rows)])
        interpreter.set_tensor(
            self._input_index, quantized.astype(self.input_spec.dtype, copy=False)
        )
        interpreter.invoke()
        return interpreter.get_tensor(self._output_index).copy()

    def _resized(self, rows: int) -> Any:
        """An interpreter of this model with batch size ``rows`` (None if the graph refuses)."""
        interpreter_cls, _, resolver = interpreter_backend()
        options: dict[str, Any] = {
            "model_content": self._model_bytes,
            "num_threads": self._num_threads,
        }
        if resolver is not None:
            options["experimental_op_resolver_type"] = resolver
        try:
            interpreter = interpreter_cls(**options)
            interpreter.resize_tensor_input(self._input_index, [rows, *self.input_spec.shape[1:]])
            interpreter.allocate_tensors()
            shape = tuple(interpreter.get_output_details()[0]["shape"])
        except (ValueError, RuntimeError) as exc:
            log.info("this model runs one window per invoke (batch resize refused: %s)", exc)
            self._batchable = False
            return None
        if shape != (rows, *self.output_spec.shape[1:]):
            self._batchable = False
            return None
        self._batched[rows] = interpreter
        return interpreter
