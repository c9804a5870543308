"""Old home of :class:`VibrationHead`, now ``device_sim/tasks/vibration/head.py``.

Kept only so ``training/vibration.py`` (split into ``training/vibration/`` in the same step of
issue #12) imports unchanged; delete once nothing imports ``device_sim.tasks.vibration_head``.
"""

from device_sim.tasks.vibration.head import VibrationHead

__all__ = ["VibrationHead"]
