"""Air quality's C hook: decode the outputs into concentrations with units, like the runtime."""

from __future__ import annotations

from collections.abc import Mapping

from device_sim.bundle import Bundle
from device_sim.errors import BundleError
from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.air_quality.runtime import OUTPUT_CLIP
from firmware_bridge.c_text import c_float, c_string

REPORT_TARGETS = """\
  // Decode like device_sim.tasks.air_quality.decode_outputs: exp(clip(z) * log_std + log_mean) - offset.
{tables}
  for (int i = 0; i < {count}; ++i) {{
    float z = DequantizeOutput(output->data.int8[i]);
    z = z < -{clip}f ? -{clip}f : z > {clip}f ? {clip}f : z;
    float value = expf(z * kLogStd[i] + kLogMean[i]) - kOffset[i];
    if (value < 0.0f) value = 0.0f;
    MicroPrintf("%s %d/1000 %s", kTargetName[i], (int)(1000.0f * value), kTargetUnit[i]);
  }}"""

_DECODING_KEYS = ("name", "unit", "log_mean", "log_std", "offset")


def report(bundle: Bundle) -> str | None:
    """Concentrations per target, or None when C cannot decode them (the raw outputs instead).

    A float curve prior or a field correction (air quality since #14) is not decoded in C yet:
    printing the raw outputs is better than concentrations that would be wrong.
    """
    try:
        head = AirQualityHead.from_dict(bundle.head)
    except BundleError:
        return None
    targets = head.targets
    decodable = all(isinstance(t, Mapping) and all(k in t for k in _DECODING_KEYS) for t in targets)
    if not decodable or head.prior or head.correction:
        return None

    def floats(key: str) -> str:
        return ", ".join(c_float(t[key]) for t in targets)

    def strings(key: str) -> str:
        return ", ".join(c_string(t[key]) for t in targets)

    n = len(targets)
    tables = "\n".join(
        [
            f"  static const char* const kTargetName[{n}] = {{{strings('name')}}};",
            f"  static const char* const kTargetUnit[{n}] = {{{strings('unit')}}};",
            f"  static const float kLogMean[{n}] = {{{floats('log_mean')}}};",
            f"  static const float kLogStd[{n}] = {{{floats('log_std')}}};",
            f"  static const float kOffset[{n}] = {{{floats('offset')}}};",
        ]
    )
    return REPORT_TARGETS.format(tables=tables, count=n, clip=float(OUTPUT_CLIP))
