"""Errors a user can hit. The CLI catches :class:`TinyfleetError` once, prints it and exits non-zero.

Every message says what went wrong *and* what to do about it.
"""


class TinyfleetError(Exception):
    """Base class for errors caused by user input or the environment, not by a bug."""


class BundleError(TinyfleetError):
    """A model bundle is missing, tampered with, of an unknown schema, or inconsistent."""


class DataError(TinyfleetError):
    """Input data (a dataset folder, a recording, a CSV) is missing, empty or malformed."""


class BrokerError(TinyfleetError):
    """The MQTT broker cannot be started or reached."""


class ConfigError(TinyfleetError):
    """A command-line option or configuration value is invalid."""
