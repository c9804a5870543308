"""KWS's C hook: print the top label and its score."""

from __future__ import annotations

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks.kws.head import KwsHead

REPORT_LABELS = """\
  int best = 0;
  for (int i = 1; i < TINYFLEET_OUTPUT_ELEMENTS; ++i) {
    if (output->data.int8[i] > output->data.int8[best]) best = i;
  }
  const char* label = best < TINYFLEET_HEAD_LABELS_COUNT ? tinyfleet_head_labels[best] : "?";
  MicroPrintf("%s score %d/1000", label, (int)(1000.0f * DequantizeOutput(output->data.int8[best])));"""


def report(bundle: Bundle) -> str | None:
    """The top label (names from ``TINYFLEET_HEAD_LABELS``), or None for a head without labels."""
    try:
        KwsHead.from_dict(bundle.head)
    except BundleError:
        return None
    return REPORT_LABELS
