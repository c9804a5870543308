"""Air quality from gas sensors: spec, typed head, the device runtime and field calibration."""
