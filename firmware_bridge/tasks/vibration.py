"""Vibration's C hook: the anomaly score against the threshold, computed like the task runtime."""

from __future__ import annotations

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks.vibration.head import VibrationHead

REPORT_ANOMALY = """\
  // Anomaly score as the task runtime computes it: mean of ((features - reconstruction) / scale)^2,
  // in double like numpy (explicit casts: TFLM builds with -Werror=double-promotion).
  double score = 0.0;
  for (int i = 0; i < TINYFLEET_OUTPUT_ELEMENTS; ++i) {
#ifdef TINYFLEET_HEAD_ERROR_SCALE_COUNT
    const double scale = (double)tinyfleet_head_error_scale[i];
#else
    const double scale = 1.0;
#endif
    const double residual =
        ((double)features[i] - (double)DequantizeOutput(output->data.int8[i])) / scale;
    score += residual * residual;
  }
  score /= TINYFLEET_OUTPUT_ELEMENTS;
  const double threshold = (double)TINYFLEET_HEAD_ANOMALY_THRESHOLD;
  MicroPrintf("anomaly score %d/1000 (threshold %d/1000): %s", (int)(1000.0 * score),
              (int)(1000.0 * threshold), score > threshold ? "ABOVE" : "normal");"""


def report(bundle: Bundle) -> str | None:
    """The score report for an autoencoder (output shaped like its input) with a threshold.

    The C code needs only ``anomaly_threshold`` and ``error_scale`` (emitted as
    ``TINYFLEET_HEAD_*`` by :mod:`firmware_bridge.model_config`), so a head that carries just those
    — without the feature tables the device runtime's explanation needs — still exports with its
    score report, as it always has.
    """
    if bundle.output.shape != bundle.input.shape:
        return None
    try:
        threshold: float | None = VibrationHead.from_dict(bundle.head).anomaly_threshold
    except BundleError:
        threshold = bundle.head.get("anomaly_threshold")
    return None if threshold is None else REPORT_ANOMALY
