"""The tinyfleet version, at the bottom of the house so the device runtime can report it.

Devices put it in Home Assistant's device record and bundles record who wrote them; the CLI prints
it. It lives here, not in ``tinyfleet`` (the CLI on top), because arrows only point down.
"""

__version__ = "0.1.0"
