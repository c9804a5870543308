"""Suite-wide test settings. Task-specific fixtures live in tests/<area>_fixtures.py."""

from __future__ import annotations

import os

# Before anything imports TensorFlow: Keras 2 for tfmot, quiet logs, no GPU probing.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
