"""Keyword spotting: spec, typed head and the device runtime (smoothed posteriors, detections)."""

from device_sim.tasks.kws.head import NON_KEYWORDS, KwsHead
from device_sim.tasks.kws.runtime import KeywordDetector, TaskRuntime

__all__ = ["NON_KEYWORDS", "KeywordDetector", "KwsHead", "TaskRuntime"]
