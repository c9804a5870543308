"""Everything that runs on a device: sensor sources, the feature front end, the interpreter, MQTT.

Imports and runs without TensorFlow (``pip install .[device]``), as on a Raspberry Pi.
"""

from device_sim.version import __version__

__all__ = ["__version__"]
