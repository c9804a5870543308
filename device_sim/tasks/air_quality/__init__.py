"""Air quality from gas sensors: spec, typed head, the device runtime and field calibration.

The runtime's decoding pieces are re-exported here, so ``from device_sim.tasks.air_quality import
OutputDecoder`` reads as the task's public surface (training and benchmarks use it).
"""

from device_sim.tasks.air_quality.head import AirQualityHead
from device_sim.tasks.air_quality.runtime import (
    DEFAULT_BANDS,
    OUTPUT_CLIP,
    CurvePrior,
    OutputDecoder,
    TaskRuntime,
    band_indices,
    decode_outputs,
    hinge_basis,
)

__all__ = [
    "DEFAULT_BANDS",
    "OUTPUT_CLIP",
    "AirQualityHead",
    "CurvePrior",
    "OutputDecoder",
    "TaskRuntime",
    "band_indices",
    "decode_outputs",
    "hinge_basis",
]
