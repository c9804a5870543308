"""tinyfleet: tiny ML micromodels from training to a fleet of MQTT devices.

This package only holds the command-line wiring and the version; the work lives in the stage packages
``training``, ``quantize``, ``firmware_bridge`` and ``device_sim``.
"""

__version__ = "0.1.0"
