"""Keyword spotting: spec, typed head and the device runtime (smoothed posteriors, detections)."""
