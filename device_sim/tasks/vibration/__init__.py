"""Vibration condition monitoring: spec, typed head and the device runtime (score, k-of-n alarm).

The score and the head are re-exported here (training calibrates the threshold with the same
:func:`reconstruction_error` the device runs).
"""

from device_sim.tasks.vibration.head import VibrationHead
from device_sim.tasks.vibration.runtime import TaskRuntime, reconstruction_error

__all__ = ["TaskRuntime", "VibrationHead", "reconstruction_error"]
