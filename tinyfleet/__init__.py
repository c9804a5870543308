"""tinyfleet: tiny ML micromodels from training to a fleet of MQTT devices.

This package only holds the command-line wiring and the version; the work lives in the stage packages
``training``, ``quantize``, ``firmware_bridge`` and ``device_sim``.
"""

from device_sim.version import __version__

__all__ = ["__version__"]
