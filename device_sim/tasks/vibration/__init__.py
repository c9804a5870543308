"""Vibration condition monitoring: spec, typed head and the device runtime (score, k-of-n alarm)."""
