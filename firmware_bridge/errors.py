"""Errors of the firmware stage a user can hit (all :class:`~device_sim.errors.TinyfleetError`)."""

from __future__ import annotations

from device_sim.errors import TinyfleetError


class FirmwareError(TinyfleetError):
    """The model or bundle cannot be turned into firmware files, or TFLM refused the model."""
