"""The feature front end, shared by training and the device.

Each front end is configured by a small frozen dataclass (a :class:`FeatureConfig` subclass) that is
saved in the bundle as a dict with a ``kind`` key; the device rebuilds the front end from the bundle
with :func:`frontend_from_dict`, never from its own defaults. Pure numpy/scipy.
"""

from device_sim.features.base import (
    FeatureConfig,
    FrontEnd,
    feature_config_from_dict,
    frontend_from_dict,
    register_feature_config,
)

__all__ = [
    "FeatureConfig",
    "FrontEnd",
    "feature_config_from_dict",
    "frontend_from_dict",
    "register_feature_config",
]
